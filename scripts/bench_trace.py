#!/usr/bin/env python3
"""Tracing off vs on across real processes (see scripts/bench-trace).

Each round starts 3 catga-orders processes on 127.0.0.1 with --trace off, then
3 with --trace stdout (every command sampled, batch span processor,
OpenTelemetry's ostream exporter; the processes' standard output goes to
/dev/null, so the spans are formatted and written but nothing is kept), and
drives POST /orders on a follower — the path with all three spans: send,
forward, apply — with wrk at each connection count, every request carrying a
traceparent of its own (scripts/wrk/create_order_traced.lua) in both
settings. Prints one JSON object per run and, per round and connection count,
the ratio on/off of the throughputs: A B A B in one run, so a drift of the
machine's speed shows in the spread of the ratios rather than in one side.
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo  # Node, free_pair, free_port, wait_until, leader_of
from http_load import wrk

HERE = os.path.dirname(os.path.abspath(__file__))

def run_cluster(binary, trace, connections, seconds, warmup):
    root = tempfile.mkdtemp(prefix=f"catga-bench-trace-{trace}-")
    ports = [demo.free_pair() for _ in range(3)]
    cluster = ",".join(f"{i + 1}=127.0.0.1:{p}" for i, p in enumerate(ports))
    nodes = [demo.Node(binary, i + 1, ports[i], demo.free_port(), cluster, root, ["--trace", trace])
             for i in range(3)]
    for n in nodes: n.stdout = subprocess.DEVNULL  # the stdout exporter's spans
    results = {}
    try:
        for n in nodes: n.start()
        leader = demo.wait_until(lambda: demo.leader_of(nodes))
        if not leader: raise SystemExit(f"bench-trace: no leader (logs in {root})")
        follower = next(n for n in nodes if n is not leader)
        url = f"http://127.0.0.1:{follower.http_port}"
        script = os.path.join(HERE, "wrk", "create_order_traced.lua")
        if warmup: wrk(url, script, max(connections), warmup)
        for c in connections:
            r = wrk(url, script, c, seconds)
            print(json.dumps({"scenario": "http-create-order-follower", "trace": trace, "mode": "multi-process",
                              "nodes": 3, "connections": c, **r}), flush=True)
            if r.get("errors") or r.get("socket_errors") or not r.get("ops"):
                raise SystemExit(f"bench-trace: failed requests with --trace {trace} (logs in {root}): {r}")
            results[c] = r["ops_per_sec"]
    finally:
        for n in nodes: n.stop()
    shutil.rmtree(root, ignore_errors=True)  # kept, with the nodes' logs, when a run failed
    return results

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--connections", default="64,1")
    args = ap.parse_args()
    connections = [int(c) for c in args.connections.split(",")]
    binary = os.path.abspath(args.binary)
    ratios = {c: [] for c in connections}
    for rnd in range(1, args.rounds + 1):
        off = run_cluster(binary, "off", connections, args.seconds, args.warmup)
        on = run_cluster(binary, "stdout", connections, args.seconds, args.warmup)
        for c in connections:
            ratio = on[c] / off[c] if off[c] else float("nan")
            ratios[c].append(ratio)
            print(json.dumps({"round": rnd, "connections": c, "off_per_sec": off[c], "on_per_sec": on[c],
                              "ratio_on_off": round(ratio, 3)}), flush=True)
    for c in connections:
        print(json.dumps({"connections": c, "median_ratio_on_off": round(statistics.median(ratios[c]), 3),
                          "min": round(min(ratios[c]), 3), "max": round(max(ratios[c]), 3)}), flush=True)

if __name__ == "__main__":
    main()
