#!/usr/bin/env python3
"""HTTP vs HTTPS creates on two 3-node catga-orders clusters (see scripts/bench-https).

Both clusters run at once on 127.0.0.1 (durable logs in a temporary
directory), one serving HTTP and one HTTPS with a throwaway CA; wrk drives
POST /orders on each leader in turn, --rounds times, so both see the same
machine. Prints one JSON object per run and a summary: medians, and the
median of each round's HTTPS/HTTP throughput ratio.
Everything it starts is stopped at the end.
"""
import argparse, json, os, shutil, statistics, sys, tempfile
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo  # Node, free_pair, free_port, wait_until, leader_of, make_pki
from http_load import wrk, HERE

def cluster(binary, root, name, flags, tls=None):
    ports = [demo.free_pair() for _ in range(3)]
    members = ",".join(f"{i + 1}=127.0.0.1:{p}" for i, p in enumerate(ports))
    base = os.path.join(root, name)
    os.makedirs(base)
    return [demo.Node(binary, i + 1, ports[i], demo.free_port(), members, base, flags(i), tls) for i in range(3)]

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=64)
    args = ap.parse_args()
    import ssl
    root = tempfile.mkdtemp(prefix="catga-bench-https-")
    binary = os.path.abspath(args.binary)
    ca = demo.make_pki(root, ["node1", "node2", "node3"])
    context = ssl.create_default_context(cafile=ca)
    plain = cluster(binary, root, "http", lambda i: [])
    tls = cluster(binary, root, "https", lambda i: ["--http-tls-cert-file", os.path.join(root, f"node{i + 1}.crt"),
                                                    "--http-tls-key-file", os.path.join(root, f"node{i + 1}.key")], context)
    results = {"http": [], "https": []}
    try:
        for n in plain + tls: n.start()
        leaders = {}
        for name, nodes in (("http", plain), ("https", tls)):
            leaders[name] = demo.wait_until(lambda: demo.leader_of(nodes), limit=60)
            if not leaders[name]: raise SystemExit(f"bench-https: no leader in the {name} cluster")
        for round_ in range(args.rounds):
            for name in ("http", "https"):
                url = f"{name}://127.0.0.1:{leaders[name].http_port}"
                r = wrk(url, os.path.join(HERE, "wrk", "create_order.lua"), args.connections, args.seconds)
                results[name].append(r)
                print(json.dumps({"scenario": "http-create-order-leader", "transport": name, "round": round_ + 1,
                                  "connections": args.connections, **r}), flush=True)
        summary = {name: {"ops_per_sec": statistics.median(r.get("ops_per_sec", 0) for r in runs),
                          "p50_us": statistics.median(r.get("p50_us") or 0 for r in runs),
                          "p99_us": statistics.median(r.get("p99_us") or 0 for r in runs),
                          "errors": sum(r.get("errors", 0) for r in runs)} for name, runs in results.items()}
        # Each round's pair ran back to back: the median of their ratios is
        # less exposed to a busy machine than the ratio of the medians.
        ratios = [t.get("ops_per_sec", 0) / max(p.get("ops_per_sec", 0), 1)
                  for p, t in zip(results["http"], results["https"])]
        print(json.dumps({"summary": summary, "https_over_http_throughput_per_round": [round(r, 3) for r in ratios],
                          "https_over_http_throughput": round(statistics.median(ratios), 3)}), flush=True)
    finally:
        for n in plain + tls: n.stop()
        shutil.rmtree(root, ignore_errors=True)

if __name__ == "__main__":
    main()
