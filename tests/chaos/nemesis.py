"""The nemesis of the chaos test: injects the faults of a schedule
(schedule.py) into a running cluster (cluster.py), one at a time, and records
each as {"kind", "at", "duration", "start", "end", "nodes", ...} (start/end:
time.monotonic(), for the per-fault figures of report.py).

Every fault ends healed: the network unblocked, paused nodes resumed, stopped
nodes started, the clock and the disks back to normal.
"""
from __future__ import annotations

import http.client
import json
import os
import random
import threading
import time

LIBFAKETIME = ["/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
               "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
               "/usr/lib/faketime/libfaketime.so.1"]
# POST /raft/snapshot waits for the write at most the server's request timeout
# (catga-orders: the default, 10 s) and then answers 504; the transport drops a
# request 5 s after that. Past this the endpoint hung (an anomaly).
SNAPSHOT_ANSWER_S = 10.0 + 5.0 + 5.0
CLOCK_SHIFT = {"clock_ahead": "+1d", "clock_behind": "-1h", "clock_ahead_live": "+1d", "clock_behind_live": "-1h"}


def log(msg):
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def libfaketime():
    """The path of libfaketime (Debian package libfaketime), or None."""
    return next((p for p in LIBFAKETIME if os.path.exists(p)), None)


def exit_reason(node):
    """The last 'cannot start' / error line of a node's log, or its tail."""
    return node.exit_reason()


class Nemesis(threading.Thread):
    def __init__(self, cluster, schedule, start, stop, election_ms):
        super().__init__(name="nemesis", daemon=True)
        self.cluster, self.schedule, self.start_time, self.stop = cluster, schedule, start, stop
        self.events = []
        self.injected = []
        self.election_ms = election_ms
        self.lock = threading.Lock()
        self.faults = {
            "kill_leader": self.kill, "kill_follower": self.kill, "kill_long": self.kill,
            "pause_leader": self.pause, "pause_follower": self.pause,
            "pause_long_leader": self.pause, "pause_long_follower": self.pause,
            "restart_node": self.restart_node, "restart_cluster": self.restart_cluster,
            "partition_leader": self.partition, "partition_follower": self.partition,
            "partition_oneway": self.partition_oneway, "split_majority": self.split_majority,
            "kill_two": self.kill_two, "drop_connections": self.drop_connections,
            "blackhole_link": self.blackhole_link, "membership": self.membership,
            "rolling_restart": self.rolling_restart, "clock_ahead": self.clock_jump, "clock_behind": self.clock_jump,
            "clock_ahead_live": self.clock_jump_live, "clock_behind_live": self.clock_jump_live,
            "disk_shutdown": self.disk_shutdown, "disk_full": self.disk_full,
        }

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


    def wait_ready(self, limit=20.0):
        """The id of a ready leader within `limit` seconds (None if none)."""
        lead = self.cluster.wait_leader(limit, ready=True)
        return lead[0] if lead else None

    # ------------------------------------------------------------ the loop
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
                self.event(f"fault {fault['kind']} raised {e!r}", kind="driver")
            finally:
                self.cluster.heal()

    def inject(self, f):
        record = {"kind": f["kind"], "at": f["at"], "duration": f["duration"], "start": time.monotonic()}
        self.faults[f["kind"]](f, record)
        record["end"] = time.monotonic()
        with self.lock:
            self.injected.append(record)

    # ------------------------------------------------------------ processes
    def kill(self, f, record):
        kind, d, pick = f["kind"], f["duration"], f["pick"]
        nodes = self.cluster.nodes
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
            snap, needs = 0, False
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

    def pause(self, f, record):
        kind, d = f["kind"], f["duration"]
        t, who = self.target("leader" if "leader" in kind else "follower", f["pick"])
        node = self.cluster.nodes[t]
        self.event(f"SIGSTOP {who} for {d:.2f}s", kind=kind, node=t)
        node.pause()
        self.sleep(d)
        node.resume()
        self.event(f"SIGCONT node {t}")
        record["nodes"] = [t]

    def restart_node(self, f, record):
        nodes = self.cluster.nodes
        ids = sorted(nodes)
        t = ids[f["pick"] % len(ids)]
        self.event(f"graceful restart (SIGTERM) of node {t}", kind=f["kind"], node=t)
        self.graceful_restart(t)
        record["nodes"] = [t]

    def graceful_restart(self, t):
        node = self.cluster.nodes[t]
        if not node.stop(timeout=15):
            self.event(f"node {t} did not stop within 15 s of SIGTERM: killed", kind="hang", node=t)
        node.start()

    def restart_cluster(self, f, record):
        nodes = self.cluster.nodes
        self.event(f"SIGKILL every node; restart in {f['duration']:.2f}s", kind=f["kind"])
        for n in nodes.values():
            n.kill()
        self.sleep(f["duration"])
        for n in nodes.values():
            n.start()
        self.event("restarted every node")
        record["nodes"] = sorted(nodes)

    def kill_two(self, f, record):
        nodes = self.cluster.nodes
        ts = sorted(random.Random(f["pick"]).sample(sorted(nodes), 2))
        self.event(f"SIGKILL nodes {ts} (leader {self.resolve_leader()}); restart in {f['duration']:.2f}s",
                   kind=f["kind"])
        for t in ts:
            nodes[t].kill()
        self.sleep(f["duration"])
        for t in ts:
            nodes[t].start()
        self.event(f"restarted nodes {ts}")
        record["nodes"] = ts

    def node_ready(self, t, limit):
        """Waits (at most `limit` s) until node t answers 200 on /health/ready: a
        leader is known and it applied everything it knows is committed."""
        end = time.monotonic() + limit
        while time.monotonic() < end:
            try:
                code, _ = self.cluster.nodes[t].request("GET", "/health/ready", timeout=2)
                if code == 200:
                    return True
            except (OSError, http.client.HTTPException, ValueError):
                pass
            time.sleep(0.1)
        return False

    def rolling_restart(self, f, record):
        """Every node in turn, gracefully, each once the previous one is ready
        again (/health/ready, at most 30 s), as an upgrade would."""
        ids = sorted(self.cluster.nodes)
        random.Random(f["pick"]).shuffle(ids)
        self.event(f"rolling restart of every node, in the order {ids}", kind=f["kind"])
        waits = []
        for t in ids:
            self.graceful_restart(t)
            t0 = time.monotonic()
            if not self.node_ready(t, 30.0):
                self.event(f"node {t} not ready within 30 s of its restart: going on")
            waits.append(round(time.monotonic() - t0, 2))
        self.event(f"rolling restart done (each node ready again after {waits} s)")
        record["nodes"] = ids

    # ------------------------------------------------------------ network
    def cut(self, side_a, side_b, seconds):
        """Blocks every link between the two sides, both ways, for `seconds`, then heals."""
        for a in side_a:
            for b in side_b:
                self.cluster.net.block(a, b)
                self.cluster.net.block(b, a)
        self.sleep(seconds)
        self.cluster.net.heal()

    def partition(self, f, record):
        t, who = self.target("leader" if f["kind"] == "partition_leader" else "follower", f["pick"])
        others = [i for i in self.cluster.nodes if i != t]
        self.event(f"isolate {who} from {others} for {f['duration']:.2f}s", kind=f["kind"], node=t)
        self.cut([t], others, f["duration"])
        self.event("healed the partition")
        record["nodes"] = [t]

    def leader_and_follower(self, pick):
        """The leader (or the lowest id if none is known) and one of its followers."""
        leader = self.resolve_leader() or sorted(self.cluster.nodes)[0]
        fs = self.followers(leader)
        return leader, fs[pick % len(fs)]

    def partition_oneway(self, f, record):
        c = self.cluster
        leader, t = self.leader_and_follower(f["pick"])
        self.event(f"one-way: drop what node {leader} (leader) sends to node {t} for {f['duration']:.2f}s",
                   kind=f["kind"], node=t, source=leader)
        c.net.block(leader, t)
        self.sleep(f["duration"])
        c.net.heal()
        self.event("healed the one-way partition")
        record["nodes"] = [leader, t]

    def split_majority(self, f, record):
        c = self.cluster
        ids = sorted(c.nodes)
        random.Random(f["pick"]).shuffle(ids)
        minority, majority = sorted(ids[: len(ids) // 2]), sorted(ids[len(ids) // 2:])
        self.event(f"split {minority} | {majority} (leader {self.resolve_leader()}) for {f['duration']:.2f}s",
                   kind=f["kind"])
        self.cut(minority, majority, f["duration"])
        self.event("healed the split")
        record["nodes"] = minority

    def blackhole_link(self, f, record):
        """One link (the leader and one follower, both ways) goes silent: bytes are
        dropped, connections stay open, new ones are accepted and ignored. The
        other links work: both ends still reach the rest of the cluster."""
        c = self.cluster
        leader, t = self.leader_and_follower(f["pick"])
        self.event(f"black hole between node {leader} (leader) and node {t} for {f['duration']:.2f}s",
                   kind=f["kind"], node=t, source=leader)
        self.cut([leader], [t], f["duration"])
        dropped = sum(c.net.pairs[p].discarded_bytes for p in ((leader, t), (t, leader)))
        self.event(f"the link carries traffic again ({dropped} bytes dropped on it so far)")
        record["nodes"] = [leader, t]

    def drop_connections(self, f, record):
        c = self.cluster
        self.event("reset every node-to-node connection", kind=f["kind"])
        for (a, b) in list(c.net.pairs):
            c.net.drop(a, b)

    # ------------------------------------------------------------ membership
    def admin(self, method, path, body=None, limit=30.0, done=(204,)):
        """Sends a /raft/members request to the ready leader until it answers one of
        `done` (404 for a removal: done before) — a 409 only with the error code
        already_exists (an add done before): 409 failed_precondition "another
        configuration change is in progress" (e.g. on a new leader whose log
        still holds the previous change uncommitted) is retried. Returns
        (status, tries) — status None if it never did within `limit`."""
        end = time.monotonic() + limit
        tries = 0
        while time.monotonic() < end:
            leader = self.wait_ready(min(10.0, max(end - time.monotonic(), 0.1)))
            if leader is None:
                continue
            tries += 1
            try:
                code, answer = self.cluster.nodes[leader].request(method, path, body=body, timeout=15)
            except (OSError, http.client.HTTPException, ValueError):
                code, answer = None, None
            refused = code == 409 and ((answer or {}).get("error") or {}).get("code") != "already_exists"
            if code in done and not refused:
                return code, tries
            self.event(f"{method} {path} on node {leader}: {code} {answer}")
            time.sleep(0.3)
        return None, tries

    def membership(self, f, record):
        """remove -> wipe -> add (docs/operations.md, "Data directory rules") of a
        follower, under load, through /raft/members."""
        c = self.cluster
        t, who = self.target("follower", f["pick"])
        node = c.nodes[t]
        self.event(f"membership: remove {who}, wipe its data directory, start it with --join, add it back",
                   kind=f["kind"], node=t)
        record["nodes"] = [t]
        code, tries = self.admin("DELETE", f"/raft/members/{t}", done=(204, 404))
        if code is None:
            self.event(f"membership: node {t} could not be removed within 30 s ({tries} tries): left as it was",
                       kind="membership-failed")
            record["failed"] = "remove"
            return
        node.stop(timeout=15)
        node.wipe()
        node.start()
        leader = self.wait_ready()
        address = c.book_address(leader or t, t)
        code, tries = self.admin("POST", "/raft/members", {"id": t, "address": address, "role": "voter"},
                                 limit=60.0, done=(204, 409))
        if code is None:
            self.event(f"membership: node {t} could not be added back within 60 s ({tries} tries)",
                       kind="membership-failed")
            record["failed"] = "add"
            return
        end = time.monotonic() + 30.0
        voter = False
        while time.monotonic() < end and not voter:
            lead = c.leader(ready=True)
            members = (lead[1].get("members") or []) if lead else []
            voter = any(m.get("id") == t and m.get("role") == "voter" for m in members)
            if not voter:
                time.sleep(0.2)
        self.event(f"membership: node {t} added back at {address}" + ("" if voter else " (not a voter after 30 s)"))
        if not voter:
            record["failed"] = "promote"

    def ask_snapshot(self, t, record):
        """POST /raft/snapshot on node t, waiting up to SNAPSHOT_ANSWER_S; the answer goes to record."""
        started = time.monotonic()
        try:
            code, body = self.cluster.nodes[t].request("POST", "/raft/snapshot", timeout=SNAPSHOT_ANSWER_S)
            answer = f"{code} {json.dumps(body)[:160]}"
        except (OSError, http.client.HTTPException, ValueError) as e:
            answer = f"no answer ({e.__class__.__name__})"
        record["snapshot"] = f"{answer} after {time.monotonic() - started:.1f}s"

    # ------------------------------------------------------------ clock
    def clock_jump(self, f, record):
        """Restarts a node under a wall clock a day ahead / an hour behind
        (libfaketime; the monotonic clock, which libuv's timers use, is real),
        then, after the fault's duration, on the real clock again."""
        c = self.cluster
        ids = sorted(c.nodes)
        t = ids[f["pick"] % len(ids)]
        shift = CLOCK_SHIFT[f["kind"]]
        lib = libfaketime()
        record["nodes"] = [t]
        if lib is None:
            self.event(f"{f['kind']}: skipped, libfaketime is not installed (scripts/setup installs it)")
            record["skipped"] = True
            return
        node = c.nodes[t]
        role = "leader" if t == self.resolve_leader() else "follower"
        self.event(f"restart node {t} ({role}) with its wall clock {shift} for {f['duration']:.2f}s",
                   kind=f["kind"], node=t)
        # NO_FAKE_STAT: file times stay real (a clock jump does not rewrite
        # inodes; the data directory marker compares the sentinel's ctime).
        node.env = {"LD_PRELOAD": lib, "FAKETIME": shift, "FAKETIME_DONT_FAKE_MONOTONIC": "1", "NO_FAKE_STAT": "1"}
        try:
            self.graceful_restart(t)
            self.sleep(f["duration"])
        finally:
            node.env = None
            self.graceful_restart(t)
        self.event(f"node {t} back on the real clock")

    def clock_jump_live(self, f, record):
        """Moves a running node's wall clock a day ahead / an hour behind, and
        after the fault's duration back to real time — a jump the other way
        while it runs (the nodes run under libfaketime's offset file; see
        Cluster.make_live_clocks)."""
        c = self.cluster
        ids = sorted(c.nodes)
        t = ids[f["pick"] % len(ids)]
        shift = CLOCK_SHIFT[f["kind"]]
        record["nodes"] = [t]
        if c.nodes[t].clock_file is None:
            self.event(f"{f['kind']}: skipped, the nodes do not run under libfaketime")
            record["skipped"] = True
            return
        role = "leader" if t == self.resolve_leader() else "follower"
        self.event(f"node {t} ({role}): wall clock jumps {shift} while it runs, for {f['duration']:.2f}s",
                   kind=f["kind"], node=t)
        c.set_clock(t, shift)
        try:
            self.sleep(f["duration"])
        finally:
            c.set_clock(t, "+0")
        self.event(f"node {t}: wall clock jumps back to real time while it runs")

    # ------------------------------------------------------------ disks
    def disk_shutdown(self, f, record):
        """The filesystem under a node fails (every I/O: EIO). The node must stop
        itself or keep failing cleanly; the disk is then replaced by the same
        content (unmount, mount: the journal is replayed) and the node restarted."""
        c = self.cluster
        t, who = self.target("leader" if f["pick"] % 2 else "follower", f["pick"] // 2)
        node, disk = c.nodes[t], c.disks[t]
        record["nodes"] = [t]
        self.event(f"disk of {who} shuts down (EIO on every I/O)", kind=f["kind"], node=t)
        disk.shutdown()
        end = time.monotonic() + 8.0
        reaction = "still running after 8 s"
        while time.monotonic() < end:
            if node.proc is not None and node.proc.poll() is not None:
                reaction = f"exited with status {node.proc.returncode}"
                break
            s = node.status()
            if s and s.get("failure"):
                reaction = f"stopped itself: {s['failure'][:160]}"
                break
            time.sleep(0.2)
        record["reaction"] = reaction
        node.kill()  # an expected exit is not a crash
        node.crashes = [x for x in node.crashes if x[1] < record["start"]]
        why = disk.remount()
        if why:
            # Its data directory is gone with the disk: --join keeps a
            # start there from bootstrapping a second cluster.
            node.join = True
            self.event(f"disk of node {t} cannot be mounted again: {why}", kind="driver")
            return
        node.start()
        self.event(f"node {t}: {reaction}; disk mounted again, node restarted")

    def disk_full(self, f, record):
        """A node's filesystem has no free byte for the fault's duration. Writes
        into space libraft already holds keep working, so a full leader is
        also asked for a snapshot (POST /raft/snapshot), which must answer —
        202 once written, 504 when the write did not happen within the request
        timeout (libraft retries it every 5 s), 503 if no longer leader —
        within SNAPSHOT_ANSWER_S; no answer from a running node is a hang. The
        node must keep serving, or stop itself (then it is restarted once the
        disk has space again) — never lose or corrupt."""
        c = self.cluster
        t, who = self.target("leader" if f["pick"] % 2 else "follower", f["pick"] // 2)
        node, disk = c.nodes[t], c.disks[t]
        record["nodes"] = [t]
        taken = disk.fill()
        self.event(f"disk of {who} full ({taken >> 20} MiB of ballast) for {f['duration']:.2f}s", kind=f["kind"],
                   node=t)
        asked = None
        if who.startswith("leader"):
            self.sleep(min(0.5, f["duration"] / 2))
            asked = threading.Thread(target=self.ask_snapshot, args=(t, record), name="snapshot", daemon=True)
            asked.start()
        self.sleep(f["duration"])
        if asked is not None:
            asked.join(SNAPSHOT_ANSWER_S + 1.0)
            answer = record.get("snapshot", "no answer yet")
            # A node that exited or stopped itself meanwhile is judged by its reaction below.
            hung = answer.startswith("no answer") and node.running() and not node.paused and not (
                (node.status() or {}).get("failure"))
            self.event(f"node {t}: snapshot asked for while its disk is full: {answer}",
                       **({"kind": "hang", "node": t} if hung else {}))
        s = node.status()
        if node.proc is not None and node.proc.poll() is not None:
            record["reaction"] = f"exited with status {node.proc.returncode}"
        elif s and s.get("failure"):
            record["reaction"] = f"stopped itself: {s['failure'][:160]}"
        else:
            record["reaction"] = "kept running"
        disk.free()
        if record["reaction"] != "kept running":
            node.kill()  # an expected exit is not a crash
            node.crashes = [x for x in node.crashes if x[1] < record["start"]]
            node.start()
        self.event(f"disk of node {t} has free space again; node {t} {record['reaction']}"
                   + ("" if record["reaction"] == "kept running" else ", restarted"))
