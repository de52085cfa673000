#!/usr/bin/env python3
"""Catga against etcd 3.4 over HTTP, side by side (see scripts/bench-vs-etcd).

Starts 3 catga-orders processes and 3 etcd members on 127.0.0.1 (free ports,
durable data in one temporary directory, everything stopped and removed on
exit), then drives each cluster's leader with wrk, interleaved A B A B:
catga-orders' POST /orders against etcd's v3 gateway POST /v3/kv/put (a fresh
key per request, a value shaped like the order), at --connections (64 and 1
by default), --rounds times each. Prints one JSON object per run, then a table
of medians and the ratio Catga / etcd. Besides ops/s and latency it reports
the CPU time (user + system, /proc/PID/stat) the leader and the whole cluster
spent per request: on a shared machine that figure moves less than the others.

With --edge (the default) each 64-connection round also measures each leader's
HTTP edge alone, a GET that touches no Raft and no state (catga-orders'
/health/live, etcd's /version): the ceiling the HTTP server and wrk leave on
this machine, against which the write paths are read.
"""
import argparse, base64, http.client, json, os, shutil, statistics, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo  # Node, free_pair, free_port, wait_until, leader_of
from http_load import wrk

HERE = os.path.dirname(os.path.abspath(__file__))

class EtcdMember:
    def __init__(self, name, client_port, peer_port, initial_cluster, root):
        self.name, self.client_port, self.peer_port = name, client_port, peer_port
        self.initial_cluster, self.dir, self.proc = initial_cluster, os.path.join(root, name), None
        self.log = open(os.path.join(root, f"{name}.log"), "ab")
    def start(self):
        client, peer = f"http://127.0.0.1:{self.client_port}", f"http://127.0.0.1:{self.peer_port}"
        self.proc = subprocess.Popen(["etcd", "--name", self.name, "--data-dir", self.dir,
                                      "--listen-client-urls", client, "--advertise-client-urls", client,
                                      "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                                      "--initial-cluster", self.initial_cluster, "--initial-cluster-state", "new",
                                      "--initial-cluster-token", "catga-bench-vs-etcd", "--log-level", "warn",
                                      "--logger", "zap"], stdout=self.log, stderr=self.log)
    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try: self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait()
    def post(self, path, body, timeout=2):
        c = http.client.HTTPConnection("127.0.0.1", self.client_port, timeout=timeout)
        try:
            c.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
            r = c.getresponse()
            return r.status, json.loads(r.read().decode() or "null")
        finally:
            c.close()
    def is_leader(self):
        try:
            code, body = self.post("/v3/maintenance/status", {})
        except OSError:
            return False
        return code == 200 and body.get("leader") == body.get("header", {}).get("member_id")

def cpu_seconds(procs):
    """User + system CPU seconds used so far by each process (from /proc/PID/stat)."""
    out = []
    for p in procs:
        with open(f"/proc/{p.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out.append((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    return out

def etcd_leader(members):
    for m in members:
        if m.is_leader():
            # A write through the gateway proves the leader serves.
            code, _ = m.post("/v3/kv/put", {"key": base64.b64encode(b"probe").decode(), "value": ""})
            if code == 200: return m
    return None

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary", help="catga-orders")
    ap.add_argument("--seconds", type=int, default=8, help="each wrk run")
    ap.add_argument("--rounds", type=int, default=3, help="A B pairs per connection count")
    ap.add_argument("--connections", default="64,1")
    ap.add_argument("--edge", action=argparse.BooleanOptionalAction, default=True,
                    help="also measure each leader's HTTP edge alone (a GET without Raft) at 64 connections")
    args = ap.parse_args()
    connections = [int(c) for c in args.connections.split(",")]
    root = tempfile.mkdtemp(prefix="catga-vs-etcd-")
    ports = [demo.free_pair() for _ in range(3)]
    cluster = ",".join(f"{i + 1}=127.0.0.1:{p}" for i, p in enumerate(ports))
    nodes = [demo.Node(os.path.abspath(args.binary), i + 1, ports[i], demo.free_port(), cluster, root)
             for i in range(3)]
    etcd_ports = [(demo.free_port(), demo.free_port()) for _ in range(3)]
    initial = ",".join(f"etcd{i + 1}=http://127.0.0.1:{p}" for i, (_, p) in enumerate(etcd_ports))
    members = [EtcdMember(f"etcd{i + 1}", c, p, initial, root) for i, (c, p) in enumerate(etcd_ports)]
    runs = []
    try:
        for n in nodes: n.start()
        for m in members: m.start()
        catga = demo.wait_until(lambda: demo.leader_of(nodes))
        if not catga: raise SystemExit("bench-vs-etcd: catga-orders elected no leader (logs in " + root + ")")
        etcd = demo.wait_until(lambda: etcd_leader(members), step=0.2)
        if not etcd: raise SystemExit("bench-vs-etcd: etcd elected no leader (logs in " + root + ")")
        # The leader first: its CPU per request is reported apart from the cluster's.
        catga_procs = [catga.proc] + [n.proc for n in nodes if n is not catga]
        etcd_procs = [etcd.proc] + [m.proc for m in members if m is not etcd]
        catga_url, etcd_url = f"http://127.0.0.1:{catga.http_port}", f"http://127.0.0.1:{etcd.client_port}"
        targets = (("catga", catga_url, "create_order.lua", catga_procs),
                   ("etcd", etcd_url, "etcd_put.lua", etcd_procs))
        edges = (("catga-edge", catga_url + "/health/live", None, catga_procs),
                 ("etcd-edge", etcd_url + "/version", None, etcd_procs)) if args.edge else ()
        for name, url, script, _ in targets:  # warm-up, not counted
            wrk(url, os.path.join(HERE, "wrk", script), 64, 2)
        for c in connections:
            for rnd in range(args.rounds):
                for name, url, script, procs in targets + (edges if c == 64 else ()):
                    before = cpu_seconds(procs)
                    r = wrk(url, script and os.path.join(HERE, "wrk", script), c, args.seconds)
                    used = [b - a for a, b in zip(before, cpu_seconds(procs))]
                    ops = max(r.get("ops", 0), 1)
                    r = {"system": name, "connections": c, "round": rnd + 1, **r,
                         "leader_cpu_us_per_op": round(used[0] * 1e6 / ops, 1),
                         "cluster_cpu_us_per_op": round(sum(used) * 1e6 / ops, 1)}
                    runs.append(r)
                    print(json.dumps(r), flush=True)
    finally:
        for n in nodes: n.stop()
        for m in members: m.stop()
        shutil.rmtree(root, ignore_errors=True)

    def median(system, c, key):
        values = [r[key] for r in runs if r["system"] == system and r["connections"] == c and key in r]
        return statistics.median(values) if values else float("nan")
    print(f"\nmedians of {args.rounds} interleaved runs of {args.seconds} s, leaders of 3 processes each")
    keys = ("ops_per_sec", "p50_us", "p99_us", "leader_cpu_us_per_op", "cluster_cpu_us_per_op")
    print(f"{'conns':>5} {'system':<10} {'ops/s':>9} {'p50 us':>9} {'p99 us':>9} {'leader CPU us/op':>17} "
          f"{'cluster CPU us/op':>18} {'errors':>7}")
    for c in connections:
        systems = ("catga", "etcd") + (("catga-edge", "etcd-edge") if args.edge and c == 64 else ())
        for system in systems:
            errors = sum(r.get("errors", 0) for r in runs if r["system"] == system and r["connections"] == c)
            print(f"{c:>5} {system:<10}" + "".join(f"{median(system, c, k):>{w}.0f}" for k, w in zip(keys, (10, 10, 10, 18, 19)))
                  + f"{errors:>8}")
        print(f"{c:>5} {'ratio':<10}" + "".join(f"{median('catga', c, k) / median('etcd', c, k):>{w}.2f}x"
                                               for k, w in zip(keys, (9, 9, 9, 17, 18))) + "   (catga / etcd)")
        if args.edge and c == 64:
            share = lambda s: median(s, c, "ops_per_sec") / median(s + "-edge", c, "ops_per_sec")
            print(f"      write throughput as a share of the same server's HTTP edge: catga {share('catga'):.2f}, "
                  f"etcd {share('etcd'):.2f}; 10x etcd would need catga's edge at "
                  f"{10 * median('etcd', c, 'ops_per_sec') / median('catga-edge', c, 'ops_per_sec'):.2f}x its measured ceiling")

if __name__ == "__main__":
    main()
