#!/usr/bin/env python3
"""Chaos test of catga-orders: nothing acknowledged is ever lost or applied twice.

Starts a real N-node cluster (N = 3 or 5) of catga-orders on 127.0.0.1 with
free ports in a temporary directory, runs concurrent clients against random
nodes while a seeded nemesis kills, pauses, restarts and partitions nodes
(partitions through a fault-injecting TCP proxy on every node -> node
connection, Raft and peer channel), heals, waits until every node caught up,
reads the final state from every node and checks the whole history
(checker.py). Python 3 standard library only.

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
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checker  # noqa: E402
from cluster import HOST, Network, Node, Reaper, free_pair, free_port  # noqa: E402

PLAN_AVAILABILITY = 99.99  # per cent, the plan's target
CLIENT_TIMEOUT = 12.0      # the server answers 504 after its request_timeout (10 s) first
LOGICAL_DEADLINE = 10.0    # an operation (with its retries) succeeded if it got an answer within this

KINDS = ["kill_leader", "kill_follower", "pause_leader", "pause_follower", "restart_node", "restart_cluster",
         "partition_leader", "partition_follower", "partition_oneway", "drop_connections"]
KINDS_5 = ["split_majority", "kill_two"]
PARTITIONS = {"partition_leader", "partition_follower", "partition_oneway", "split_majority", "drop_connections"}
# Only without proxies: a follower down long enough to need a snapshot from the
# leader (InstallSnapshot carries the leader's view of the member addresses,
# which the per-node address lists of the proxy network cannot survive).
KINDS_DIRECT = ["kill_long"]
# Optional (--long-pauses): SIGSTOP beyond the 10 s request timeout, so that
# commands in flight on the paused node reach their deadline (504 territory).
KINDS_LONG_PAUSE = ["pause_long_leader", "pause_long_follower"]


def log(msg):
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ============================================================== schedule

def make_schedule(seed, seconds, nodes, election_ms, network="proxy", long_kills=False, long_pauses=False,
                  warmup=3.0):
    """The fault schedule: a pure function of (seed, seconds, nodes, election timeout, network).
    Kinds come in shuffled rounds, so a short run still sees each kind once."""
    rng = random.Random(f"schedule-{seed}")
    kinds = KINDS + (KINDS_5 if nodes >= 5 else [])
    if network == "direct":
        kinds = [k for k in kinds if k not in PARTITIONS]
    if network == "direct" or long_kills:
        kinds = kinds + KINDS_DIRECT
    if long_pauses:
        kinds = kinds + KINDS_LONG_PAUSE
    e = election_ms / 1000.0
    schedule, bag, t = [], [], warmup
    while True:
        if not bag:
            bag = kinds[:]
            rng.shuffle(bag)
        kind = bag.pop()
        if kind == "kill_long":
            duration = rng.uniform(25.0, 40.0)
        elif kind.startswith("kill"):
            duration = rng.uniform(0.5, 3.0)                 # down time before the restart
        elif kind.startswith("pause_long"):
            duration = rng.uniform(10.5, 14.0)
        elif kind.startswith("pause"):
            duration = rng.uniform(2.0, 6.0) * e             # SIGSTOP longer than an election timeout
        elif kind == "restart_cluster":
            duration = rng.uniform(0.3, 2.0)
        elif kind in ("restart_node", "drop_connections"):
            duration = 0.0
        else:
            duration = rng.uniform(1.0, 4.0)                 # partitions
        gap = rng.uniform(1.5, 3.5)
        pick = rng.randrange(1 << 30)
        if t + duration > seconds - 2.0:
            break
        schedule.append({"at": round(t, 2), "kind": kind, "duration": round(duration, 2), "pick": pick})
        t += duration + gap
    return schedule


def format_schedule(schedule):
    return "\n".join(f"  t+{f['at']:6.2f}s  {f['kind']:<18} duration {f['duration']:.2f}s  pick {f['pick']}"
                     for f in schedule)


# ============================================================== cluster

class Cluster:
    def __init__(self, binary, n, root, election_ms, heartbeat_ms, log_level, network="proxy"):
        self.root = root
        self.reaper = Reaper()
        self.reaper.watch_dir(root)
        ids = list(range(1, n + 1))
        self.real = {i: free_pair() for i in ids}
        # direct: every node gets the same --cluster list, no proxy (no partitions).
        self.net = Network(ids if network == "proxy" else [], self.real)
        self.nodes = {}
        used = set()
        for i in ids:
            http_port = free_port()
            while http_port in used or any(http_port in (p, p + 1) for p in self.real.values()):
                http_port = free_port()
            used.add(http_port)
            cluster_arg = ",".join(f"{j}={HOST}:{self.real[j]}" if j == i or network == "direct"
                                   else f"{j}={self.net.address(i, j)}" for j in ids)
            self.nodes[i] = Node(binary, i, self.real[i], http_port, cluster_arg, root, self.reaper, election_ms,
                                 heartbeat_ms, log_level)

    def start_all(self):
        for n in self.nodes.values():
            if n.proc is None:
                n.start()

    def statuses(self):
        return {i: n.status() for i, n in self.nodes.items()}

    def leader(self, ready=False):
        best = None
        for i, s in self.statuses().items():
            if s and s.get("role") == "leader" and (s.get("ready") or not ready):
                if best is None or s.get("term", 0) > best[1].get("term", 0):
                    best = (i, s)
        return best

    def wait_leader(self, limit, ready=True):
        end = time.monotonic() + limit
        while time.monotonic() < end:
            lead = self.leader(ready=ready)
            if lead:
                return lead
            time.sleep(0.1)
        return None

    def check_exits(self):
        return [i for i, n in self.nodes.items() if n.check_exit()]

    def heal(self):
        self.net.heal()
        for n in self.nodes.values():
            if n.paused:
                n.resume()
        self.check_exits()
        for n in self.nodes.values():
            if n.proc is None:
                n.start()

    def shutdown(self):
        for n in self.nodes.values():
            try:
                n.stop(timeout=10)
            except Exception:  # noqa: BLE001 - keep stopping the others
                n.kill()
        self.net.close()
        self.reaper.unwatch_dir(self.root)  # the driver removes it (after keeping what a failure needs)
        self.reaper.close()


# ============================================================== clients

class Recorder:
    def __init__(self):
        self.ops = []
        self.lock = threading.Lock()
        self.ids = []  # acknowledged order ids, for other clients to read and cancel

    def add(self, op):
        with self.lock:
            self.ops.append(op)

    def add_id(self, oid):
        with self.lock:
            self.ids.append(oid)

    def random_id(self, rng):
        with self.lock:
            if not self.ids:
                return None
            recent = self.ids[-300:]
            return recent[rng.randrange(len(recent))]


class Client(threading.Thread):
    def __init__(self, cid, seed, cluster, recorder, stop, pace):
        super().__init__(name=f"client-{cid}", daemon=True)
        self.cid, self.cluster, self.recorder, self.stop, self.pace = cid, cluster, recorder, stop, pace
        self.rng = random.Random(f"client-{seed}-{cid}")
        self.seed = seed
        self.conns = {}
        self.own = []          # ids this client created
        self.max_index = 0     # highest X-Catga-Index of this client's acknowledged commands
        self.n = 0
        self.lop = 0           # logical operation counter

    # One HTTP exchange on a kept-alive connection; classifies the outcome.
    def call(self, node, method, path, body=None, headers=None):
        conn = self.conns.get(node.id)
        fresh = conn is None
        if fresh:
            conn = http.client.HTTPConnection(HOST, node.http_port, timeout=CLIENT_TIMEOUT)
            self.conns[node.id] = conn
        h = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body)
            h["Content-Type"] = "application/json"
        try:
            if conn.sock is None:
                try:
                    conn.connect()
                except ConnectionRefusedError:
                    self._drop(node.id)
                    return None, {}, None, "refused"
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            text = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
            if r.will_close:
                self._drop(node.id)
            try:
                payload = json.loads(text) if text else None
            except ValueError:
                payload = None
            return r.status, hdrs, payload, None
        except (OSError, http.client.HTTPException) as e:
            self._drop(node.id)
            return None, {}, None, type(e).__name__

    def _drop(self, nid):
        c = self.conns.pop(nid, None)
        if c is not None:
            try:
                c.close()
            except OSError:
                pass

    def pick_node(self):
        ids = sorted(self.cluster.nodes)
        return self.cluster.nodes[ids[self.rng.randrange(len(ids))]]

    def record(self, kind, node, invoke, status, error, **fields):
        complete = time.monotonic()
        if status is None:
            outcome = "failed" if error == "refused" else "unknown"
        elif 200 <= status < 300:
            outcome = "ok"
        elif status == 504 or status >= 500 and status != 503:
            outcome = "unknown"
        else:
            outcome = "failed"  # 4xx, 503: nothing happened
        op = {"type": kind, "client": self.cid, "node": node.id, "invoke": invoke, "complete": complete,
              "outcome": outcome, "status": status, "error": error, "lop": self.lop}
        op.update(fields)
        self.recorder.add(op)
        return op

    def create(self):
        self.n += 1
        key = f"s{self.seed}-c{self.cid}-{self.n}"
        quantity = self.rng.randint(1, 9)
        for attempt in range(5):
            node = self.pick_node()
            t0 = time.monotonic()
            status, hdrs, body, err = self.call(node, "POST", "/orders", {"product_id": key, "quantity": quantity},
                                                {"Idempotency-Key": key})
            oid = body.get("id") if status == 201 and isinstance(body, dict) else None
            index = int(hdrs.get("x-catga-index", 0) or 0)
            op = self.record("create", node, t0, status, err, key=key, quantity=quantity, id=oid, index=index,
                             attempt=attempt)
            if op["outcome"] == "ok":
                if oid is None or body.get("product_id") != key:
                    op["outcome"], op["error"] = "unknown", f"unexpected body {body!r}"
                    return
                self.own.append(oid)
                self.recorder.add_id(oid)
                self.max_index = max(self.max_index, index)
                return
            if self.stop.is_set():
                return
            if op["outcome"] == "unknown" and self.rng.random() < 0.85:
                time.sleep(self.rng.uniform(0.05, 0.3))   # retry the same key: applies at most once
                continue
            if op["outcome"] == "failed" and status in (503, None) and self.rng.random() < 0.5:
                time.sleep(self.rng.uniform(0.05, 0.3))
                continue
            return

    def cancel(self):
        oid = self.recorder.random_id(self.rng)
        if oid is None:
            return
        for attempt in range(3):
            node = self.pick_node()
            t0 = time.monotonic()
            status, hdrs, body, err = self.call(node, "POST", f"/orders/{oid}/cancel")
            index = int(hdrs.get("x-catga-index", 0) or 0)
            op = self.record("cancel", node, t0, status, err, id=oid, index=index, attempt=attempt,
                             value=(body or {}).get("status") if status == 200 else None)
            if op["outcome"] == "ok":
                if op["value"] != "cancelled":
                    op["outcome"], op["error"] = "unknown", f"unexpected body {body!r}"
                self.max_index = max(self.max_index, index)
                return
            if status in (404, 409) or self.stop.is_set():
                return
            time.sleep(self.rng.uniform(0.05, 0.2))

    def read(self):
        r = self.rng.random()
        if self.own and r < 0.35:
            oid, consistency = self.own[-1 - self.rng.randrange(min(len(self.own), 20))], "read_your_writes"
        else:
            oid = self.recorder.random_id(self.rng)
            consistency = "linearizable" if r < 0.75 else "local"
        if oid is None:
            return
        for attempt in range(3):
            node = self.pick_node()
            path = f"/orders/{oid}?consistency={consistency}"
            headers = {}
            if consistency == "read_your_writes":
                path = f"/orders/{oid}"
                headers["X-Catga-Min-Index"] = str(self.max_index)
            t0 = time.monotonic()
            status, hdrs, body, err = self.call(node, "GET", path, headers=headers)
            value = (body or {}).get("status") if status == 200 else None
            op = self.record("read", node, t0, status, err, id=oid, consistency=consistency, value=value,
                             min_index=self.max_index if consistency == "read_your_writes" else 0, attempt=attempt)
            if op["outcome"] == "ok" and value not in ("created", "cancelled"):
                op["outcome"], op["error"] = "unknown", f"unexpected body {body!r}"
            if op["outcome"] == "ok" or status == 404 or self.stop.is_set():
                return
            time.sleep(self.rng.uniform(0.05, 0.2))

    def run(self):
        try:
            while not self.stop.is_set():
                self.lop += 1
                r = self.rng.random()
                if r < 0.35 or not self.own:
                    self.create()
                elif r < 0.45:
                    self.cancel()
                else:
                    self.read()
                time.sleep(self.rng.uniform(0, self.pace))
        finally:
            for nid in list(self.conns):
                self._drop(nid)


# ============================================================== nemesis

def exit_reason(node):
    """The last 'cannot start' / error line of a node's log, or its tail."""
    tail = node.log_tail(30).splitlines()
    for line in reversed(tail):
        if "cannot start" in line or "[error]" in line or "[critical]" in line:
            return line.strip()[:400]
    return (tail[-1].strip()[:400] if tail else "no log")


class Nemesis(threading.Thread):
    def __init__(self, cluster, schedule, start, stop, election_ms):
        super().__init__(name="nemesis", daemon=True)
        self.cluster, self.schedule, self.start_time, self.stop = cluster, schedule, start, stop
        self.events = []
        self.injected = []
        self.election_ms = election_ms
        self.lock = threading.Lock()

    def event(self, msg, **details):
        t = time.monotonic() - self.start_time
        e = {"t": round(t, 2), "msg": msg}
        e.update(details)
        with self.lock:
            self.events.append(e)
        log(f"t+{t:6.2f}s nemesis: {msg}")

    def sleep(self, seconds):
        self.stop.wait(seconds)

    def resolve_leader(self):
        lead = self.cluster.wait_leader(3.0, ready=False)
        return lead[0] if lead else None

    def up_ids(self):
        return [i for i, n in self.cluster.nodes.items() if n.running() and not n.paused]

    def followers(self, leader):
        return [i for i in sorted(self.cluster.nodes) if i != leader]

    def target(self, role, pick):
        leader = self.resolve_leader()
        ids = sorted(self.cluster.nodes)
        if role == "leader":
            if leader is None:
                t = ids[pick % len(ids)]
                return t, f"no leader known; node {t}"
            return leader, f"leader {leader}"
        fs = self.followers(leader)
        t = fs[pick % len(fs)]
        return t, f"follower {t} (leader {leader})"

    def run(self):
        shift = 0.0  # a fault that overran (kill_long, a slow stop) delays the rest, keeping the gaps
        for fault in self.schedule:
            delay = self.start_time + fault["at"] + shift - time.monotonic()
            if delay > 0:
                self.sleep(delay)
            else:
                shift -= delay
            if self.stop.is_set():
                break
            exited = self.cluster.check_exits()
            for i in exited:
                why = exit_reason(self.cluster.nodes[i])
                self.event(f"node {i} exited on its own: {why}", kind="crash", nodes=[i])
            if exited:
                for i in exited:
                    self.cluster.nodes[i].start()
            try:
                self.inject(fault)
            except Exception as e:  # noqa: BLE001 - a driver bug must not leave faults behind
                self.event(f"fault {fault['kind']} raised {e!r}")
            finally:
                self.cluster.heal()

    def inject(self, f):
        kind, d, pick = f["kind"], f["duration"], f["pick"]
        c = self.cluster
        nodes = c.nodes
        record = {"kind": kind, "at": f["at"], "duration": d}
        if kind in ("kill_leader", "kill_follower", "kill_long"):
            t, who = self.target("leader" if kind == "kill_leader" else "follower", pick)
            before = nodes[t].status() or {}
            self.event(f"SIGKILL {who}; restart in {d:.2f}s", kind=kind, node=t)
            nodes[t].kill()
            self.sleep(d)
            if kind == "kill_long":
                # Stay down until the leader compacted its log past this node
                # (snapshot_trailing = 2048 entries behind a snapshot are kept),
                # so that the restart needs InstallSnapshot; at most 100 s more.
                applied = before.get("applied_index", 0)
                end = time.monotonic() + 100.0
                while not self.stop.is_set():
                    lead = self.cluster.leader()
                    snap = (lead[1].get("last_snapshot_index") or 0) if lead else 0
                    needs = snap > applied + 2048
                    if needs or time.monotonic() > end:
                        break
                    self.sleep(0.5)
                self.event(f"node {t} applied {applied} when killed; leader's last snapshot {snap} after "
                           f"{time.monotonic() - self.start_time - f['at']:.1f}s: "
                           f"{'InstallSnapshot expected' if needs else 'catch-up from the log'}",
                           install_snapshot=needs)
                record["install_snapshot"] = needs
            nodes[t].start()
            self.event(f"restarted node {t}")
            record["nodes"] = [t]
        elif kind.startswith("pause"):
            t, who = self.target("leader" if "leader" in kind else "follower", pick)
            self.event(f"SIGSTOP {who} for {d:.2f}s", kind=kind, node=t)
            nodes[t].pause()
            self.sleep(d)
            nodes[t].resume()
            self.event(f"SIGCONT node {t}")
            record["nodes"] = [t]
        elif kind == "restart_node":
            ids = sorted(nodes)
            t = ids[pick % len(ids)]
            self.event(f"graceful restart (SIGTERM) of node {t}", kind=kind, node=t)
            graceful = nodes[t].stop(timeout=15)
            if not graceful:
                self.event(f"node {t} did not stop within 15 s of SIGTERM: killed", kind="hang", node=t)
            nodes[t].start()
            record["nodes"] = [t]
        elif kind == "restart_cluster":
            self.event(f"SIGKILL every node; restart in {d:.2f}s", kind=kind)
            for n in nodes.values():
                n.kill()
            self.sleep(d)
            for n in nodes.values():
                n.start()
            self.event("restarted every node")
            record["nodes"] = sorted(nodes)
        elif kind in ("partition_leader", "partition_follower"):
            t, who = self.target("leader" if kind == "partition_leader" else "follower", pick)
            others = [i for i in nodes if i != t]
            self.event(f"isolate {who} from {others} for {d:.2f}s", kind=kind, node=t)
            for o in others:
                c.net.block(t, o)
                c.net.block(o, t)
            self.sleep(d)
            c.net.heal()
            self.event("healed the partition")
            record["nodes"] = [t]
        elif kind == "partition_oneway":
            leader = self.resolve_leader() or sorted(nodes)[0]
            fs = self.followers(leader)
            t = fs[pick % len(fs)]
            self.event(f"one-way: drop what node {leader} (leader) sends to node {t} for {d:.2f}s", kind=kind,
                       node=t, source=leader)
            c.net.block(leader, t)
            self.sleep(d)
            c.net.heal()
            self.event("healed the one-way partition")
            record["nodes"] = [leader, t]
        elif kind == "split_majority":
            ids = sorted(nodes)
            rng = random.Random(pick)
            rng.shuffle(ids)
            minority, majority = sorted(ids[: len(ids) // 2]), sorted(ids[len(ids) // 2:])
            leader = self.resolve_leader()
            self.event(f"split {minority} | {majority} (leader {leader}) for {d:.2f}s", kind=kind)
            for a in minority:
                for b in majority:
                    c.net.block(a, b)
                    c.net.block(b, a)
            self.sleep(d)
            c.net.heal()
            self.event("healed the split")
            record["nodes"] = minority
        elif kind == "kill_two":
            ids = sorted(nodes)
            rng = random.Random(pick)
            ts = sorted(rng.sample(ids, 2))
            self.event(f"SIGKILL nodes {ts} (leader {self.resolve_leader()}); restart in {d:.2f}s", kind=kind)
            for t in ts:
                nodes[t].kill()
            self.sleep(d)
            for t in ts:
                nodes[t].start()
            self.event(f"restarted nodes {ts}")
            record["nodes"] = ts
        elif kind == "drop_connections":
            self.event("reset every node-to-node connection", kind=kind)
            for (a, b) in list(c.net.pairs):
                c.net.drop(a, b)
        else:
            raise ValueError(kind)
        with self.lock:
            self.injected.append(record)


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


def self_test(history, finals):
    """Mutates the real history in ways the checker must catch (a lost order, a
    duplicate, a stale linearizable read, a failed create that applied) and
    returns the mutations it missed: a checker that cannot fail proves nothing."""
    import copy
    missed = []
    if not finals or not finals[0]["orders"]:
        return ["no final state to mutate"]
    ok_creates = [op for op in history if op["type"] == "create" and op["outcome"] == "ok"]
    attempts = {}
    for op in history:
        if op["type"] == "create":
            attempts[op["key"]] = attempts.get(op["key"], 0) + 1

    def expect(kind, h, f, what):
        if not any(a["kind"] == kind for a in checker.check(h, f)["anomalies"]):
            missed.append(f"{what}: no {kind} anomaly")

    f = copy.deepcopy(finals)
    f[-1]["orders"] = f[-1]["orders"][:-1]
    expect("lost", history, f, "an acknowledged order removed from one node")
    f = copy.deepcopy(finals)
    dup = dict(f[0]["orders"][0])
    dup["id"] = max(o["id"] for o in f[0]["orders"]) + 1
    for x in f:
        x["orders"].append(dup)
    expect("duplicate", history, f, "an order applied twice on every node")
    created_done = {}
    for op in ok_creates:
        created_done[op["id"]] = min(created_done.get(op["id"], 1e300), op["complete"])
    for i, op in enumerate(history):
        if (op["type"] == "read" and op.get("consistency") == "linearizable" and op["outcome"] == "ok"
                and created_done.get(op["id"], 1e300) < op["invoke"]):
            h = copy.deepcopy(history)
            h[i].update(outcome="failed", status=404, value=None)
            expect("nonlinearizable", h, finals, "a linearizable read made stale")
            break
    else:
        missed.append("no linearizable read to make stale")
    for i, op in enumerate(history):
        if op["type"] == "create" and op["outcome"] == "ok" and attempts[op["key"]] == 1:
            h = copy.deepcopy(history)
            h[i].update(outcome="failed", status=503, id=None)
            expect("failed-applied", h, finals, "an applied create reported as 503")
            break
    return missed


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100.0 * len(values)))]


def summarize(ops):
    by = {}
    for op in ops:
        k = (op["type"], op["outcome"])
        by[k] = by.get(k, 0) + 1
    answered = [op for op in ops if op["outcome"] == "ok" or op.get("status") in (404, 409)]
    # Logical operations: one client action with its retries.
    lops = {}
    for op in ops:
        k = (op["client"], op["lop"])
        lops.setdefault(k, []).append(op)
    good = 0
    for attempts in lops.values():
        start = min(a["invoke"] for a in attempts)
        if any((a["outcome"] == "ok" or a.get("status") in (404, 409)) and a["complete"] - start <= LOGICAL_DEADLINE
               for a in attempts):
            good += 1
    lat = {}
    for kind in ("create", "cancel", "read"):
        xs = [(op["complete"] - op["invoke"]) * 1000 for op in ops if op["type"] == kind and op["outcome"] == "ok"]
        lat[kind] = {"p50_ms": percentile(xs, 50), "p99_ms": percentile(xs, 99), "max_ms": max(xs) if xs else None}
    return {
        "requests": len(ops),
        "by_type_outcome": {f"{t}/{o}": n for (t, o), n in sorted(by.items())},
        "request_availability_pct": 100.0 * len(answered) / max(len(ops), 1),
        "operations": len(lops),
        "operation_availability_pct": 100.0 * good / max(len(lops), 1),
        "latency": lat,
    }


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
                    help="proxy: node-to-node traffic through the driver's proxies (partitions); direct: the same "
                         "--cluster list for every node, no partitions, but long kills that need InstallSnapshot")
    ap.add_argument("--long-kills", action="store_true",
                    help="also kill followers for 25-40 s with the proxy network (shows its InstallSnapshot limitation)")
    ap.add_argument("--long-pauses", action="store_true",
                    help="also SIGSTOP the leader or a follower for 10.5-14 s, beyond the 10 s request timeout")
    ap.add_argument("--no-faults", action="store_true", help="run the workload without a nemesis (a baseline)")
    ap.add_argument("--no-self-test", action="store_true",
                    help="skip re-checking mutated copies of the history (lost, duplicate, stale read, failed-applied)")
    ap.add_argument("--summary", help="write the summary as JSON to this file")
    ap.add_argument("--artifacts", help="keep the node logs and the history here (always; without it they are "
                                        "kept only for a failing run, in a new catga-chaos-failed-* temp directory)")
    ap.add_argument("--print-schedule", action="store_true", help="print the schedule of --seed and exit")
    args = ap.parse_args(argv)

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 1 << 31)
    schedule = [] if args.no_faults else make_schedule(seed, args.seconds, args.nodes, args.election_timeout_ms,
                                                       args.network, args.long_kills,
                                                       args.long_pauses)
    if args.print_schedule:
        print(format_schedule(schedule))
        return 0
    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        print(f"chaos: {binary} is not an executable", file=sys.stderr)
        return 2
    n_clients = args.clients or 2 * args.nodes
    wall_limit = args.seconds + 300.0

    log(f"seed {seed}: {args.nodes} nodes, {args.seconds:.0f} s, {n_clients} clients, election timeout "
        f"{args.election_timeout_ms} ms, heartbeat {args.heartbeat_ms} ms, {len(schedule)} faults planned")
    log("fault schedule (replay with --seed " + str(seed) + "):\n" + (format_schedule(schedule) or "  (none)"))

    root = tempfile.mkdtemp(prefix="catga-chaos-")
    cluster = None
    stop = threading.Event()
    finished = threading.Event()

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
        for i, n in sorted(cluster.nodes.items()):
            log(f"node {i}: raft {HOST}:{n.raft_port} (peer +1), http {n.http_port}, --cluster {n.cluster_arg}")
        cluster.start_all()
        lead = cluster.wait_leader(60.0, ready=True)
        if not lead:
            log("no leader within 60 s of the start")
            for n in cluster.nodes.values():
                print(f"--- node {n.id} log ---\n{n.log_tail()}")
            return 2
        log(f"leader: node {lead[0]} (term {lead[1]['term']})")

        t0 = time.monotonic()
        clients = [Client(c + 1, seed, cluster, recorder, stop, args.pace_ms / 1000.0) for c in range(n_clients)]
        for c in clients:
            c.start()
        nemesis = Nemesis(cluster, schedule, t0, stop, args.election_timeout_ms)
        nemesis.start()
        while time.monotonic() - t0 < args.seconds:
            time.sleep(0.5)
        stop.set()
        nemesis.join(timeout=30)
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
                             f"{sorted({c for c, _ in n.crashes})}): {exit_reason(n)}", log=n.log_tail(60)))
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
        # Nodes whose stored configuration changed (an InstallSnapshot carries the leader's view of the addresses).
        warnings = []
        for i, s in cluster.statuses().items():
            for m in (s or {}).get("members", []):
                if m.get("id") == i and m.get("address") != f"{HOST}:{cluster.nodes[i].raft_port}":
                    warnings.append(f"node {i} now lists itself at {m.get('address')} (configuration replaced "
                                    f"by a snapshot from the leader): its next restart would be refused")
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
        final_orders = len(finals[0]["orders"]) if finals else 0
        statuses = cluster.statuses()
        terms = {i: (s or {}).get("term") for i, s in statuses.items()}
        commit = max((s or {}).get("commit_index", 0) for s in statuses.values())
        snapshots = {i: (s or {}).get("last_snapshot_index") for i, s in statuses.items()}
        summary.update({
            "seed": seed, "nodes": args.nodes, "seconds": args.seconds, "clients": n_clients,
            "election_timeout_ms": args.election_timeout_ms, "heartbeat_ms": args.heartbeat_ms,
            "faults_injected": len(injected), "faults_by_kind": counts, "final_orders": final_orders,
            "final_terms": terms, "commit_index": commit, "last_snapshot_index": snapshots,
            "network": args.network, "anomalies": len(anomalies), "checker": result["stats"], "check_seconds": check_s,
            "plan_availability_pct": PLAN_AVAILABILITY, "warnings": warnings,
        })
        print()
        print(f"==== chaos summary (seed {seed}, {args.nodes} nodes, {args.seconds:.0f} s) ====")
        print(f"  client requests        {summary['requests']}  ({summary['operations']} operations incl. retries)")
        for k, v in summary["by_type_outcome"].items():
            print(f"    {k:<22} {v}")
        print(f"  faults injected        {len(injected)}  {counts}")
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
        for w in warnings:
            print(f"  WARNING: {w}")
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
        if cluster is not None:
            cluster.shutdown()
        if keep is not None:
            for n in cluster.nodes.values():
                try:
                    shutil.copy(n.log_path, keep)
                except OSError:
                    pass
            log(f"logs and history kept in {keep}")
        shutil.rmtree(root, ignore_errors=True)
        finished.set()


if __name__ == "__main__":
    sys.exit(main())
