#!/usr/bin/env python3
"""Chaos test of catga-orders: nothing acknowledged is ever lost or applied twice.

Starts a real N-node cluster (N = 3 or 5) of catga-orders on 127.0.0.1 with
free ports in a temporary directory, runs concurrent clients (client.py)
against random nodes while a seeded nemesis (nemesis.py, schedule.py) kills,
pauses, restarts and partitions nodes, black-holes links, removes and re-adds
members, restarts every node in turn, and — when asked — jumps wall clocks and
fails disks; partitions go through a fault-injecting TCP proxy on every node ->
node connection (cluster.py). Then it heals, waits until every node caught up,
reads the final state from every node and checks the whole history
(checker.py); report.py adds figures per fault kind. Python 3 standard
library only (libfaketime for --clock-jumps, root for --disk-faults).

  chaos.py --binary build/dev/examples/catga-orders --seconds 60 --nodes 3 --seed 7

Exit status: 0 no anomaly, 1 anomalies (the seed, the fault schedule and the
anomalies are printed; logs and the history are kept in a directory named at
the end), 2 the run itself failed (no leader at start, ...).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checker  # noqa: E402
import disk  # noqa: E402
from client import CLIENT_TIMEOUT, LOGICAL_DEADLINE, Client, Recorder  # noqa: E402
from cluster import HOST, Cluster  # noqa: E402
from nemesis import Nemesis, exit_reason, libfaketime, log  # noqa: E402
from report import fault_figures, format_fault_figures, self_test, summarize  # noqa: E402
from schedule import format_schedule, make_schedule  # noqa: E402
from watch import Watcher  # noqa: E402

PLAN_AVAILABILITY = 99.99  # per cent, the plan's target


# ============================================================== end of run

def quiesce(cluster, problems):
    """Heal, wait for a ready leader and for every node to apply what it committed."""
    cluster.heal()
    for i in cluster.check_exits():
        problems.append(checker.anomaly("crash", f"node {i} exited on its own after healing: "
                                                 f"{exit_reason(cluster.nodes[i])}", log=cluster.nodes[i].log_tail()))
        cluster.nodes[i].start()
    lead = cluster.wait_leader(60.0, ready=True)
    if not lead:
        problems.append(checker.anomaly("unavailable", "no ready leader within 60 s after healing"))
        return False
    leader = cluster.nodes[lead[0]]
    # A linearizable read commits a barrier of the leader's term: everything
    # earlier is committed or gone.
    for _ in range(20):
        try:
            code, _ = leader.request("GET", "/orders?consistency=linearizable&limit=1", timeout=12)
            if code == 200:
                break
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.5)
    s = leader.status(timeout=5) or {}
    target = s.get("commit_index", 0)
    end = time.monotonic() + 60.0
    while time.monotonic() < end:
        st = cluster.statuses()
        if all(x and x.get("applied_index", 0) >= target for x in st.values()):
            return True
        time.sleep(0.2)
    lag = {i: (x or {}).get("applied_index") for i, x in cluster.statuses().items()}
    problems.append(checker.anomaly("stuck", f"nodes did not apply up to commit index {target} within 60 s: {lag}"))
    return False


def read_finals(cluster):
    """The final order list of every node that answers; and the ids of those that did not."""
    finals, missing = [], []
    for i, n in sorted(cluster.nodes.items()):
        if not n.running():
            missing.append(i)
            continue
        for attempt in range(10):
            t0 = time.monotonic()
            try:
                code, body = n.request("GET", "/orders?consistency=linearizable", timeout=30)
            except (OSError, http.client.HTTPException, ValueError):
                code, body = None, None
            t1 = time.monotonic()
            if code == 200 and isinstance(body, list):
                finals.append({"node": i, "invoke": t0, "complete": t1, "orders": body})
                break
            time.sleep(1.0)
        else:
            missing.append(i)
    return finals, missing


# ============================================================== main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True, help="path to catga-orders")
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the chaos phase")
    ap.add_argument("--nodes", type=int, default=3, choices=(3, 5))
    ap.add_argument("--seed", type=int, default=None, help="replays the fault schedule of this seed")
    ap.add_argument("--clients", type=int, default=None, help="concurrent clients (default: 2 per node)")
    ap.add_argument("--pace-ms", type=float, default=20.0, help="a client sleeps up to this long between operations")
    ap.add_argument("--election-timeout-ms", type=int, default=300)
    ap.add_argument("--heartbeat-ms", type=int, default=50)
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--network", choices=("proxy", "direct"), default="proxy",
                    help="proxy: node-to-node traffic through the driver's proxies (each node's --cluster list names "
                         "its proxies: its own address book); direct: the same --cluster list for every node, no "
                         "network faults, with long kills")
    ap.add_argument("--long-kills", action="store_true",
                    help="also kill followers for 25-40 s, until the leader compacted its log past them "
                         "(their restart needs InstallSnapshot)")
    ap.add_argument("--clock-jumps", action="store_true",
                    help="also move a node's wall clock a day ahead or an hour behind, at a restart and while it runs "
                         "(libfaketime)")
    ap.add_argument("--disk-faults", action="store_true",
                    help="also shut down or fill the filesystem under a node (each node's data directory on its own "
                         "loop-mounted ext4; needs root, skipped with a message otherwise)")
    ap.add_argument("--classic", action="store_true",
                    help="only the fault kinds of the schedules before 2026-11-30 (a seed replays its old schedule)")
    ap.add_argument("--long-pauses", action="store_true",
                    help="also SIGSTOP the leader or a follower for 10.5-14 s, beyond the 10 s request timeout")
    ap.add_argument("--no-faults", action="store_true", help="run the workload without a nemesis (a baseline)")
    ap.add_argument("--libraft-trace", action="store_true",
                    help="run the nodes with LIBRAFT_TRACE=1: libraft's own trace in the node logs (large: a "
                         "line per message each node sends or receives)")
    ap.add_argument("--no-self-test", action="store_true",
                    help="skip re-checking mutated copies of the history (lost, duplicate, stale read, failed-applied)")
    ap.add_argument("--summary", help="write the summary as JSON to this file")
    ap.add_argument("--artifacts", help="keep the node logs and the history here (always; without it they are "
                                        "kept only for a failing run, in a new catga-chaos-failed-* temp directory)")
    ap.add_argument("--print-schedule", action="store_true", help="print the schedule of --seed and exit")
    args = ap.parse_args(argv)

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 1 << 31)
    skipped = []
    if args.disk_faults and not args.print_schedule:
        why = disk.probe()
        if why:
            skipped.append(f"disk faults skipped: {why}")
            args.disk_faults = False
    if args.clock_jumps and not args.print_schedule and libfaketime() is None:
        skipped.append("clock jumps skipped: libfaketime is not installed (scripts/setup installs it)")
        args.clock_jumps = False
    schedule = [] if args.no_faults else make_schedule(seed, args.seconds, args.nodes, args.election_timeout_ms,
                                                       args.network, args.long_kills, args.long_pauses,
                                                       args.clock_jumps, args.disk_faults, args.classic)
    if args.print_schedule:
        print(format_schedule(schedule))
        return 0
    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        print(f"chaos: {binary} is not an executable", file=sys.stderr)
        return 2
    n_clients = args.clients or 2 * args.nodes
    # The check after the faults takes time in proportion to the requests:
    # ~5 minutes for 80k requests of a 10-minute run on two loaded cores.
    wall_limit = 2 * args.seconds + 300.0

    for note in skipped:
        log(note)
    log(f"seed {seed}: {args.nodes} nodes, {args.seconds:.0f} s, {n_clients} clients, election timeout "
        f"{args.election_timeout_ms} ms, heartbeat {args.heartbeat_ms} ms, {len(schedule)} faults planned")
    log("fault schedule (replay with --seed " + str(seed) + "):\n" + (format_schedule(schedule) or "  (none)"))

    root = tempfile.mkdtemp(prefix="catga-chaos-")
    cluster = None
    stop = threading.Event()
    finished = threading.Event()
    watch_stop = threading.Event()  # the observer runs until the nodes stop
    watcher = None

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)  # also when started with SIGINT ignored (a background job)

    def watchdog():
        if not finished.wait(wall_limit):
            log(f"the run exceeded its wall-clock limit of {wall_limit:.0f} s: stopping every process")
            try:
                if cluster:
                    for n in cluster.nodes.values():
                        n.kill()
            finally:
                os._exit(3)
    threading.Thread(target=watchdog, name="watchdog", daemon=True).start()

    failed = True
    result = None
    problems = []
    nemesis = None
    recorder = Recorder()
    try:
        cluster = Cluster(binary, args.nodes, root, args.election_timeout_ms, args.heartbeat_ms, args.log_level,
                          args.network)
        if args.clock_jumps:
            cluster.make_live_clocks(libfaketime())
        if args.libraft_trace:
            for n in cluster.nodes.values():
                n.base_env = dict(n.base_env or {}, LIBRAFT_TRACE="1")
        if args.disk_faults:
            why = cluster.make_disks()
            if why:
                log(f"cannot put the data directories on their own disks ({why}): stopping")
                return 2
        for i, n in sorted(cluster.nodes.items()):
            log(f"node {i}: raft {HOST}:{n.raft_port} (peer +1), http {n.http_port}, --cluster {n.cluster_arg}")
        cluster.start_all()
        watcher = Watcher(cluster, os.path.join(root, "watch.log"), time.monotonic(), watch_stop)
        watcher.start()
        lead = cluster.wait_leader(60.0, ready=True)
        if not lead:
            log("no leader within 60 s of the start")
            for n in cluster.nodes.values():
                print(f"--- node {n.id} log ---\n{n.log_tail()}")
            return 2
        log(f"leader: node {lead[0]} (term {lead[1]['term']})")

        t0 = time.monotonic()
        watcher.start_time = t0  # t+ as in the nemesis's lines
        clients = [Client(c + 1, seed, cluster, recorder, stop, args.pace_ms / 1000.0) for c in range(n_clients)]
        for c in clients:
            c.start()
        nemesis = Nemesis(cluster, schedule, t0, stop, args.election_timeout_ms)
        nemesis.start()
        while time.monotonic() - t0 < args.seconds:
            time.sleep(0.5)
        stop.set()
        nemesis.join(timeout=120)  # a membership change or rolling restart in progress completes
        log("chaos phase over: healing, waiting for the clients' last operations")
        cluster.heal()
        for c in clients:
            c.join(timeout=CLIENT_TIMEOUT * 6)
        if any(c.is_alive() for c in clients):
            problems.append(checker.anomaly("hang", "a client operation did not finish within its timeouts"))
        for e in nemesis.events:
            if e.get("kind") in ("crash", "hang"):
                problems.append(checker.anomaly(e["kind"], e["msg"]))
        for n in cluster.nodes.values():
            if n.crashes:
                problems.append(checker.anomaly(
                    "crash", f"node {n.id} exited on its own {len(n.crashes)} time(s) (statuses "
                             f"{sorted({c[0] for c in n.crashes})}): " + "; ".join(c[2] for c in n.crashes),
                    log=n.log_tail(60)))
        bad = [op for op in recorder.ops if str(op.get("error") or "").startswith("unexpected body")]
        for op in bad[:10]:
            problems.append(checker.anomaly("bad-response", f"a 2xx answer with an unexpected body: "
                                                            f"{checker.describe(op)}: {op['error']}"))
        log("waiting until every node applied everything committed")
        quiesce(cluster, problems)
        finals, missing = read_finals(cluster)
        if missing:
            problems.append(checker.anomaly("unavailable", f"nodes {missing} did not answer the final read "
                                                           f"(checked the others)"))
        # Nodes whose stored configuration lists them at another address than
        # their own (InstallSnapshot carries the leader's view): they restart
        # fine, their address book is their own --cluster list.
        relisted = sorted(i for i, s in cluster.statuses().items() for m in (s or {}).get("members", [])
                          if m.get("id") == i and m.get("address") != f"{HOST}:{cluster.nodes[i].raft_port}")
        log(f"checking {len(recorder.ops)} client requests and {len(finals)} final states")
        t_check = time.monotonic()
        result = checker.check(recorder.ops, finals)
        check_s = time.monotonic() - t_check
        anomalies = problems + result["anomalies"]
        self_test_note = "skipped"
        if not args.no_self_test and finals:
            missed = self_test(recorder.ops, finals)
            for m in missed:
                anomalies.append(checker.anomaly("checker", f"checker self-test missed: {m}"))
            self_test_note = f"{4 - len(missed)}/4 injected anomalies caught"
        summary = summarize(recorder.ops)
        injected = nemesis.injected
        counts = {}
        for f in injected:
            counts[f["kind"]] = counts.get(f["kind"], 0) + 1
        figures = fault_figures(injected, recorder.ops)
        final_orders = len(finals[0]["orders"]) if finals else 0
        statuses = cluster.statuses()
        terms = {i: (s or {}).get("term") for i, s in statuses.items()}
        # Role and known leader with the term: a node left behind shows how
        # (chaos seed 559162531: a candidate one term behind, no leader known).
        roles = {i: f"{(s or {}).get('role')}/{((s or {}).get('leader') or {}).get('id')}" for i, s in statuses.items()}
        commit = max((s or {}).get("commit_index", 0) for s in statuses.values())
        snapshots = {i: (s or {}).get("last_snapshot_index") for i, s in statuses.items()}
        summary.update({
            "seed": seed, "nodes": args.nodes, "seconds": args.seconds, "clients": n_clients,
            "election_timeout_ms": args.election_timeout_ms, "heartbeat_ms": args.heartbeat_ms,
            "faults_injected": len(injected), "faults_by_kind": counts, "final_orders": final_orders,
            "final_terms": terms, "final_roles": roles, "commit_index": commit, "last_snapshot_index": snapshots,
            "network": args.network, "anomalies": len(anomalies), "checker": result["stats"], "check_seconds": check_s,
            "plan_availability_pct": PLAN_AVAILABILITY, "faults": figures, "skipped": skipped,
            "relisted": relisted,
        })
        print()
        print(f"==== chaos summary (seed {seed}, {args.nodes} nodes, {args.seconds:.0f} s) ====")
        print(f"  client requests        {summary['requests']}  ({summary['operations']} operations incl. retries)")
        for k, v in summary["by_type_outcome"].items():
            print(f"    {k:<22} {v}")
        print(f"  faults injected        {len(injected)}  {counts}")
        print(format_fault_figures(figures))
        for note in skipped:
            print(f"  {note}")
        print(f"  orders in final state  {final_orders} (identical on every node: "
              f"{'yes' if not any(a['kind'] == 'divergence' for a in anomalies) else 'NO'})")
        print(f"  orders checked         {result['stats']['orders_checked']} for linearizability "
              f"({result['stats']['inconclusive']} inconclusive), in {check_s:.1f} s")
        print(f"  checker self-test      {self_test_note} (lost, duplicate, stale read, failed-applied)")
        print(f"  availability           {summary['operation_availability_pct']:.3f} % of operations answered within "
              f"{LOGICAL_DEADLINE:.0f} s (requests: {summary['request_availability_pct']:.3f} %); "
              f"plan: {PLAN_AVAILABILITY} % (without continuous faults)")
        lat = summary["latency"]
        print("  latency ok (p50/p99 ms) " + ", ".join(
            f"{k} {v['p50_ms']:.1f}/{v['p99_ms']:.1f}" for k, v in lat.items() if v["p50_ms"] is not None))
        print(f"  final terms            {terms}; commit index {commit}; last snapshot index {snapshots}")
        print(f"  final roles/leader     {roles}")
        if relisted:
            print(f"  stored configuration   nodes {relisted} list themselves at another node's address for them "
                  f"(a configuration written by the leader, or an installed snapshot)")
        print(f"  anomalies              {len(anomalies)}")
        for a in anomalies[:30]:
            print(f"    {a}")
            for line in a.get("operations", [])[:40]:
                print(f"        {line}")
        if args.summary:
            with open(args.summary, "w") as f:
                json.dump(summary, f, indent=2)
        failed = bool(anomalies)
        if failed:
            print(f"\nFAILED: seed {seed} — replay with --seed {seed} --nodes {args.nodes} --seconds {args.seconds:g}")
            print("fault schedule:\n" + format_schedule(schedule))
            print("faults as injected:")
            for e in nemesis.events:
                print(f"  t+{e['t']:6.2f}s {e['msg']}")
        return 1 if failed else 0
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}): stopping every process")
        return 130
    finally:
        stop.set()
        keep = None
        if (failed or args.artifacts) and cluster is not None:
            keep = args.artifacts or tempfile.mkdtemp(prefix=f"catga-chaos-failed-{seed}-")
            os.makedirs(keep, exist_ok=True)
            try:
                with open(os.path.join(keep, "history.json"), "w") as f:
                    json.dump({"seed": seed, "schedule": schedule, "events": nemesis.events if nemesis else [],
                               "ops": recorder.ops, "anomalies": (result or {}).get("anomalies", []) + problems}, f)
            except (OSError, TypeError, ValueError) as e:
                log(f"cannot write the history: {e}")
        watch_stop.set()
        if watcher is not None:
            watcher.join(timeout=15)
        if cluster is not None:
            cluster.shutdown()
        if keep is not None:
            for path in [n.log_path for n in cluster.nodes.values()] + [os.path.join(root, "watch.log")]:
                try:
                    shutil.copy(path, keep)
                except OSError:
                    pass
            log(f"logs and history kept in {keep}")
        shutil.rmtree(root, ignore_errors=True)
        finished.set()


if __name__ == "__main__":
    sys.exit(main())
