"""The chaos run's observer: what every node says of itself and what the
proxies carried, written to a log in the run directory (watch.log, kept with
the node logs), so that a node left behind can be explained afterwards.

Every second it asks each node for GET /raft/status and writes a line for a
node whose role, term, known leader, failure or view of the members (id and
role) changed — every 10 s a line with its indexes too. Every 5 s it writes,
per proxy pair and kind (raft, peer), what changed: connections accepted,
refused (the node's port did not answer) and accepted while blocked; bytes
forwarded from the dialling node, dropped, and answered; connections open;
how long ago bytes last reached the peer. When the answering nodes' views of
the members differ for 10 s, a "members differ" line (at most every 30 s). A
node that knows no leader for 5 s
while another node leads gets a "leaderless" line (at most every 10 s) with
the leader's view of it (its role there, last contact) and the leader -> node
raft proxy's counters: whether the leader's bytes reach the proxy, and pass.
"""
from __future__ import annotations

import threading
import time

ROLE_LETTER = {"voter": "v", "standby": "s", "spare": "p"}


def members_view(status):
    """ "1v 2v 3p" — ids and roles (v voter, s standby, p spare) of the node's configuration."""
    ms = sorted((m.get("id", 0), ROLE_LETTER.get(m.get("role"), "?")) for m in (status or {}).get("members") or [])
    return " ".join(f"{i}{r}" for i, r in ms)


class Watcher(threading.Thread):
    def __init__(self, cluster, path, start, stop, period=1.0):
        super().__init__(name="watch", daemon=True)
        self.cluster, self.path, self.start_time, self.stop = cluster, path, start, stop
        self.period = period
        self.last_sig = {}
        self.last_full = 0.0
        self.last_net = 0.0
        self.net_before = {}
        self.leaderless_since = {}
        self.leaderless_said = {}
        self.differ_since = None
        self.differ_said = 0.0
        self.lines = 0

    def write(self, f, text):
        now = time.monotonic()
        stamp = time.strftime("%H:%M:%S") + f".{int((time.time() % 1) * 1000):03d}"
        f.write(f"{stamp} t+{now - self.start_time:7.2f} {text}\n")
        self.lines += 1

    def run(self):
        with open(self.path, "a", buffering=1) as f:
            self.write(f, "watch: started (status lines on change, network lines every 5 s)")
            while not self.stop.is_set():
                t = time.monotonic()
                try:
                    self.tick(f, t)
                except Exception as e:  # noqa: BLE001 - the observer must not end the run
                    self.write(f, f"watch: error {e!r}")
                self.stop.wait(max(0.0, self.period - (time.monotonic() - t)))
            self.tick(f, time.monotonic(), final=True)
            self.write(f, "watch: stopped")

    def tick(self, f, now, final=False):
        c = self.cluster
        statuses = {}
        for i, n in sorted(c.nodes.items()):
            statuses[i] = n.status(timeout=0.5)
        full = final or now - self.last_full >= 10.0
        for i, s in statuses.items():
            if s is None:
                n = c.nodes[i]
                sig = ("down" if not n.running() else "paused" if n.paused else "no answer",)
                text = sig[0]
            else:
                leader = (s.get("leader") or {})
                sig = (s.get("role"), s.get("term"), leader.get("id") if leader.get("known") else 0,
                       members_view(s), s.get("failure") or "")
                text = (f"{sig[0]} term {sig[1]} leader {sig[2] or '-'} members [{sig[3]}]"
                        + (f" failure {sig[4][:120]}" if sig[4] else ""))
            if full or self.last_sig.get(i) != sig:
                extra = ""
                if s is not None:
                    extra = (f" commit {s.get('commit_index')} applied {s.get('applied_index')} "
                             f"snapshot {s.get('last_snapshot_index')}")
                    if s.get("role") == "leader":
                        contacts = " ".join(f"{m.get('id')}:{m.get('last_contact_ms')}"
                                            for m in s.get("members") or [] if m.get("id") != i)
                        extra += f" last_contact_ms {contacts}"
                self.write(f, f"node {i}: {text}{extra}")
                self.last_sig[i] = sig
        if full:
            self.last_full = now
        self.leaderless(f, now, statuses)
        self.divergence(f, now, statuses)
        if final or now - self.last_net >= 5.0:
            self.network(f, now)
            self.last_net = now

    def leaderless(self, f, now, statuses):
        c = self.cluster
        leaders = [(i, s) for i, s in statuses.items() if s and s.get("role") == "leader"]
        lead = max(leaders, key=lambda x: x[1].get("term", 0)) if leaders else None
        for i, s in statuses.items():
            known = bool(s and ((s.get("leader") or {}).get("known") or s.get("role") == "leader"))
            if s is None or known or lead is None:
                self.leaderless_since.pop(i, None)
                continue
            since = self.leaderless_since.setdefault(i, now)
            if now - since < 5.0 or now - self.leaderless_said.get(i, 0.0) < 10.0:
                continue
            self.leaderless_said[i] = now
            li, ls = lead
            view = next((m for m in ls.get("members") or [] if m.get("id") == i), None)
            where = (f"{view.get('role')}, last contact {view.get('last_contact_ms')} ms" if view
                     else "not a member")
            counters = c.net.counters() if c.net.pairs else {}
            pair = counters.get((li, i, "raft"))
            back = counters.get((i, li, "raft"))

            def fmt(p):
                if p is None:
                    return "no proxy"
                age = f"{now - p['last_fwd']:.1f} s ago" if p["last_fwd"] else "never"
                return (f"accepted {p['accepted']} refused {p['refused']} doomed {p['doomed']} open {p['open']} "
                        f"blocked {p['blocked']} fwd {p['fwd']} B (last {age}) dropped {p['dropped']} B "
                        f"back {p['back']} B")
            self.write(f, f"leaderless: node {i} ({s.get('role')}, term {s.get('term')}, members "
                          f"[{members_view(s)}]) knows no leader for {now - since:.0f} s; node {li} leads term "
                          f"{ls.get('term')} with members [{members_view(ls)}], node {i} there: {where}; "
                          f"proxy {li}->{i} raft: {fmt(pair)}; proxy {i}->{li} raft: {fmt(back)}")

    def divergence(self, f, now, statuses):
        """A line when the answering nodes' views of the members (id and role)
        have differed for 10 s (at most every 30 s): a configuration change
        still travelling takes far less."""
        views = {i: members_view(s) for i, s in statuses.items() if s is not None}
        if len(set(views.values())) <= 1:
            self.differ_since = None
            return
        if self.differ_since is None:
            self.differ_since = now
        if now - self.differ_since >= 10.0 and now - self.differ_said >= 30.0:
            self.differ_said = now
            self.write(f, f"members differ for {now - self.differ_since:.0f} s: " +
                       "; ".join(f"node {i} [{v}]" for i, v in sorted(views.items())))

    def network(self, f, now):
        c = self.cluster
        if not c.net.pairs:
            return
        counters = c.net.counters()
        parts = []
        for key, v in sorted(counters.items()):
            before = self.net_before.get(key)
            delta = {k: v[k] - (before or {}).get(k, 0) for k in ("accepted", "refused", "doomed", "fwd", "dropped",
                                                                  "back")}
            if before is not None and not any(delta.values()) and before.get("open") == v["open"] and \
                    before.get("blocked") == v["blocked"]:
                continue
            src, dst, kind = key
            age = f"{now - v['last_fwd']:.1f} s ago" if v["last_fwd"] else "never"
            parts.append(f"network: {src}->{dst} {kind}: +acc {delta['accepted']} +ref {delta['refused']} "
                         f"+doom {delta['doomed']} +fwd {delta['fwd']} +drop {delta['dropped']} "
                         f"+back {delta['back']} open {v['open']}{' BLOCKED' if v['blocked'] else ''} "
                         f"last_fwd {age}")
        self.net_before = counters
        for line in parts:
            self.write(f, line)
