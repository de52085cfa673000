#!/usr/bin/env python3
"""HTTP load on a 3-process cluster of catga-orders with wrk (see scripts/http-load).

Starts 3 nodes on 127.0.0.1 (durable logs in a temporary directory), then for
each target (leader, follower) and each connection count (1, 64) drives
POST /orders and GET /orders/{id} with wrk for --seconds, and prints one JSON
object per run: scenario, mode, nodes, connections, ops, ops_per_sec, p50_us,
p99_us, errors. Everything it starts is stopped at the end.
"""
import argparse, json, os, re, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo  # Node, free_pair, free_port, wait_until, leader_of

HERE = os.path.dirname(os.path.abspath(__file__))

def to_us(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m: return None
    v, unit = float(m.group(1)), m.group(2)
    return v if unit == "us" else v * 1000 if unit == "ms" else v * 1e6

def wrk(url, script, connections, seconds, env=None):
    threads = min(2, connections)
    script_args = ["-s", script] if script else []  # no script: GET of the URL itself
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency",
                          *script_args, url], capture_output=True, text=True, env=env, timeout=seconds + 60).stdout
    result = {}
    m = re.search(r"(\d+) requests in ([\d.]+)(s|m)", out)
    if m:
        result["ops"] = int(m.group(1))
        secs = float(m.group(2)) * (60 if m.group(3) == "m" else 1)
        result["ops_per_sec"] = round(result["ops"] / secs)
    for pct in ("50", "99"):
        m = re.search(rf"^\s*{pct}(?:\.000)?%\s+(\S+)", out, re.M)
        if m: result[f"p{pct}_us"] = to_us(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["errors"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: (.*)", out)
    if m: result["socket_errors"] = m.group(1).strip()
    return result

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--http-threads", type=int, default=2, help="each node's HTTP I/O threads")
    args = ap.parse_args()
    import tempfile, shutil
    root = tempfile.mkdtemp(prefix="catga-http-load-")
    ports = [demo.free_pair() for _ in range(3)]
    cluster = ",".join(f"{i + 1}=127.0.0.1:{p}" for i, p in enumerate(ports))
    nodes = [demo.Node(os.path.abspath(args.binary), i + 1, ports[i], demo.free_port(), cluster, root,
                       ["--http-threads", str(args.http_threads)]) for i in range(3)]
    try:
        for n in nodes: n.start()
        leader = demo.wait_until(lambda: demo.leader_of(nodes))
        if not leader: raise SystemExit("http-load: no leader")
        follower = next(n for n in nodes if n is not leader)
        created = 0
        for target_name, target in (("leader", leader), ("follower", follower)):
            for connections in (1, 64):
                url = f"http://127.0.0.1:{target.http_port}"
                r = wrk(url, os.path.join(HERE, "wrk", "create_order.lua"), connections, args.seconds)
                created += r.get("ops", 0)
                print(json.dumps({"scenario": f"http-create-order-{target_name}", "mode": "multi-process", "nodes": 3,
                                  "connections": connections, **r}), flush=True)
                env = dict(os.environ, ORDERS=str(max(created, 1)))
                r = wrk(url, os.path.join(HERE, "wrk", "get_order.lua"), connections, args.seconds, env)
                print(json.dumps({"scenario": f"http-get-order-{target_name}", "mode": "multi-process", "nodes": 3,
                                  "connections": connections, **r}), flush=True)
    finally:
        for n in nodes: n.stop()
        shutil.rmtree(root, ignore_errors=True)

if __name__ == "__main__":
    main()
