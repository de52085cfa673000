"""Processes, ports and the fault-injecting network of the chaos test.

Everything listens on 127.0.0.1. Every node -> node connection goes through a
proxy owned by the driver: node i's --cluster list names node j (j != i) by the
address of the proxy i->j (a port pair P, P+1: Raft and peer channel), and
itself by its real Raft port (a node binds the address of its own entry).

That list is node i's address book (docs/operations.md, "How a node reaches
its peers"): node i sends every Raft message for j — requests and answers —
and opens every peer-channel connection to j through the proxy i->j, whatever
its stored Raft configuration says. The stored configuration is replicated
state: after an InstallSnapshot it holds the leader's view of the addresses
(node i listed at the proxy leader->i), and restarts still work. So a block
i->j drops everything i sends to j; a symmetric block is a full partition.
"""
from __future__ import annotations

import http.client
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import shutil
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from loopback_ports import free_pair, free_port  # noqa: E402

HOST = "127.0.0.1"

_REAPER = r"""
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
import shutil, time
import subprocess
pids, dirs, mounts = set(), set(), []
for line in sys.stdin:
    try:
        op, arg = line.rstrip("\n").split(" ", 1)
        if op == "+":
            pids.add(int(arg))
        elif op == "-":
            pids.discard(int(arg))
        elif op == "d":
            dirs.add(arg)
        elif op == "u":
            dirs.discard(arg)
        elif op == "m":
            mounts.append(arg)
        elif op == "n":
            mounts = [m for m in mounts if m != arg]
    except ValueError:
        pass
for pid in pids:
    for sig in (signal.SIGCONT, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except OSError:
            pass
if dirs or mounts:
    time.sleep(0.5)  # let the killed nodes go before removing their data
for m in reversed(mounts):
    subprocess.call(["umount", "-l", m], stderr=subprocess.DEVNULL)
for d in dirs:
    shutil.rmtree(d, ignore_errors=True)
"""


class Reaper:
    """A tiny separate process that SIGKILLs every node still registered when
    the driver dies (even by SIGKILL, e.g. a CTest timeout): its stdin closes."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", _REAPER], stdin=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self.lock = threading.Lock()

    def _send(self, line):
        with self.lock:
            try:
                self.proc.stdin.write(line + "\n")
                self.proc.stdin.flush()
            except (OSError, ValueError):
                pass

    def watch_dir(self, path):
        """Removed by the reaper if the driver dies without unwatching it."""
        self._send(f"d {path}")

    def unwatch_dir(self, path):
        self._send(f"u {path}")

    def watch_mount(self, path):
        """Unmounted (lazily) by the reaper if the driver dies without unwatching it."""
        self._send(f"m {path}")

    def unwatch_mount(self, path):
        self._send(f"n {path}")

    def add(self, pid):
        self._send(f"+ {pid}")

    def remove(self, pid):
        self._send(f"- {pid}")

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _listener(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((HOST, port))
    s.listen(64)
    return s


def listening_pair():
    """Two listening sockets on ports P and P+1 (held, so nobody else takes them)."""
    for _ in range(500):
        a = socket.socket()
        a.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        a.bind((HOST, 0))
        p = a.getsockname()[1]
        if p >= 65535:
            a.close()
            continue
        try:
            b = _listener(p + 1)
        except OSError:
            a.close()
            continue
        a.listen(64)
        return p, a, b
    raise RuntimeError("no free port pairs for the proxies")


def _hard_close(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    except OSError:
        pass
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class _Conn:
    def __init__(self, pair, kind, down, up):
        self.pair, self.kind, self.down, self.up = pair, kind, down, up
        self.doomed = False  # blocked: its bytes are discarded; it is closed when the block lifts
        self.closed = False
        self.lock = threading.Lock()

    def close(self):
        with self.lock:
            if self.closed:
                return
            self.closed = True
        _hard_close(self.down)
        if self.up is not None:
            _hard_close(self.up)
        self.pair.forget(self)


class _Pair:
    def __init__(self, src, dst, port, real_port):
        self.src, self.dst, self.port, self.real_port = src, dst, port, real_port
        self.blocked = False
        self.conns = set()
        self.lock = threading.Lock()
        self.accepted = 0
        self.discarded_bytes = 0
        # Per kind ("raft", "peer"), for the network log (Network.counters):
        # connections accepted, refused (the node's port did not answer),
        # accepted while blocked; bytes src -> dst forwarded and discarded,
        # bytes dst -> src forwarded (answers on the same connection); when
        # bytes src -> dst last reached dst (time.monotonic(), 0: never).
        self.counts = {k: {"accepted": 0, "refused": 0, "doomed": 0, "fwd": 0, "dropped": 0, "back": 0,
                           "last_fwd": 0.0} for k in ("raft", "peer")}

    def count(self, kind, key, n=1):
        with self.lock:
            self.counts[kind][key] += n

    def forget(self, conn):
        with self.lock:
            self.conns.discard(conn)


class Network:
    """Proxies for every directed pair of nodes; block/unblock/drop per pair."""

    def __init__(self, node_ids, real_ports):
        self.pairs = {}
        self.selector = selectors.DefaultSelector()
        self.listeners = []
        for i in node_ids:
            for j in node_ids:
                if i == j:
                    continue
                port, raft_l, peer_l = listening_pair()
                pair = _Pair(i, j, port, real_ports[j])
                self.pairs[(i, j)] = pair
                for sock, kind in ((raft_l, "raft"), (peer_l, "peer")):
                    sock.setblocking(False)
                    self.selector.register(sock, selectors.EVENT_READ, (pair, kind))
                    self.listeners.append(sock)
        self.stopping = False
        self.thread = threading.Thread(target=self._accept_loop, name="proxy-accept", daemon=True)
        self.thread.start()

    def address(self, src, dst):
        return f"{HOST}:{self.pairs[(src, dst)].port}"

    # -------------------------------------------------------------- data path
    def _accept_loop(self):
        while not self.stopping:
            for key, _ in self.selector.select(timeout=0.2):
                pair, kind = key.data
                try:
                    down, _ = key.fileobj.accept()
                except OSError:
                    continue
                down.setblocking(True)
                down.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                threading.Thread(target=self._serve, args=(pair, kind, down), daemon=True).start()

    def _serve(self, pair, kind, down):
        pair.accepted += 1
        pair.count(kind, "accepted")
        # Checked and registered under the lock unblock() takes: a connection
        # accepted while blocked but registered after the unblock collected
        # the doomed ones would discard its bytes for as long as it lives — a
        # black hole no heal lifts.
        with pair.lock:
            blocked = pair.blocked
            if blocked:
                conn = _Conn(pair, kind, down, None)
                conn.doomed = True
                pair.conns.add(conn)
        if blocked:
            pair.count(kind, "doomed")
            self._pump(conn, down, None, forward=True)
            return
        target = pair.real_port + (1 if kind == "peer" else 0)
        try:
            up = socket.create_connection((HOST, target), timeout=1.0)
            up.settimeout(None)
            up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pair.count(kind, "refused")
            _hard_close(down)  # the node is down: refuse, as the real port would
            return
        conn = _Conn(pair, kind, down, up)
        with pair.lock:
            pair.conns.add(conn)
            if pair.blocked:  # blocked while connecting
                conn.doomed = True
        threading.Thread(target=self._pump, args=(conn, up, down, False), daemon=True).start()
        self._pump(conn, down, up, forward=True)

    def _pump(self, conn, src, dst, forward):
        """Copies src to dst until either end closes; `forward`: src -> dst is
        the pair's direction (the dialling node to its peer), else the answers
        on that connection."""
        pair, kind = conn.pair, conn.kind
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if conn.doomed or dst is None:
                    pair.discarded_bytes += len(data)
                    pair.count(kind, "dropped", len(data))
                    continue
                dst.sendall(data)
                if forward:
                    with pair.lock:
                        pair.counts[kind]["fwd"] += len(data)
                        pair.counts[kind]["last_fwd"] = time.monotonic()
                else:
                    pair.count(kind, "back", len(data))
        except OSError:
            pass
        finally:
            conn.close()

    # -------------------------------------------------------------- control
    def block(self, src, dst):
        """Drop everything src sends to dst from now on (connections stay open,
        silently: a black hole, as a partition looks to TCP)."""
        pair = self.pairs[(src, dst)]
        with pair.lock:
            pair.blocked = True
            for c in pair.conns:
                c.doomed = True

    def unblock(self, src, dst):
        """Lift a block; connections that lost bytes are reset (TCP never loses
        bytes in the middle of a stream, so they cannot be resumed)."""
        pair = self.pairs[(src, dst)]
        with pair.lock:
            pair.blocked = False
            doomed = [c for c in pair.conns if c.doomed]
        for c in doomed:
            c.close()

    def drop(self, src, dst):
        """Reset every current connection src -> dst."""
        pair = self.pairs[(src, dst)]
        with pair.lock:
            conns = list(pair.conns)
        for c in conns:
            c.close()

    def heal(self):
        for (src, dst) in self.pairs:
            self.unblock(src, dst)

    def counters(self):
        """{(src, dst, kind): counters} — a copy of every pair's (see _Pair)
        plus "open": its connections open now."""
        out = {}
        for (src, dst), pair in self.pairs.items():
            with pair.lock:
                for kind, c in pair.counts.items():
                    d = dict(c)
                    d["open"] = sum(1 for x in pair.conns if x.kind == kind)
                    d["blocked"] = pair.blocked
                    out[(src, dst, kind)] = d
        return out

    def blocked_pairs(self):
        return sorted(k for k, p in self.pairs.items() if p.blocked)

    def close(self):
        self.stopping = True
        self.thread.join(timeout=2)
        for s in self.listeners:
            try:
                s.close()
            except OSError:
                pass
        for pair in self.pairs.values():
            with pair.lock:
                conns = list(pair.conns)
            for c in conns:
                c.close()


class Node:
    def __init__(self, binary, nid, raft_port, http_port, cluster_arg, root, reaper, election_ms, heartbeat_ms,
                 log_level):
        self.binary, self.id, self.raft_port, self.http_port = binary, nid, raft_port, http_port
        self.cluster_arg, self.reaper = cluster_arg, reaper
        self.dir = os.path.join(root, f"node{nid}")
        self.log_path = os.path.join(root, f"node{nid}.log")
        self.election_ms, self.heartbeat_ms, self.log_level = election_ms, heartbeat_ms, log_level
        self.proc = None
        self.paused = False
        self.join = False  # --join: set once its data directory was wiped (remove -> wipe -> add)
        self.env = None    # extra environment of the next starts (libfaketime)
        self.base_env = None  # environment of every start (a live-adjustable libfaketime clock)
        self.clock_file = None  # that clock's offset file (libfaketime's FAKETIME_TIMESTAMP_FILE)
        self.starts = 0
        self.crashes = []  # (exit code, time, what) of exits nobody asked for

    def args(self):
        return [self.binary, "--id", str(self.id), "--data-dir", self.dir, "--http", f"{HOST}:{self.http_port}",
                "--cluster", self.cluster_arg, "--election-timeout-ms", str(self.election_ms),
                "--heartbeat-ms", str(self.heartbeat_ms), "--log-level", self.log_level] + (
                    ["--join"] if self.join else [])

    def start(self):
        assert self.proc is None
        with open(self.log_path, "ab") as log:
            note = f" with {' '.join(f'{k}={v}' for k, v in self.env.items())}" if self.env else ""
            log.write(f"\n==== chaos: start #{self.starts + 1} at {time.strftime('%H:%M:%S')}{note} ====\n".encode())
            log.flush()
            extra = dict(self.base_env or {}, **(self.env or {}))
            env = dict(os.environ, **extra) if extra else None
            self.proc = subprocess.Popen(self.args(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, env=env)
        self.starts += 1
        self.paused = False
        self.reaper.add(self.proc.pid)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def check_exit(self):
        """Records an exit nobody asked for (a crash, or a refused start)."""
        if self.proc is not None and self.proc.poll() is not None:
            # Which start, when it was seen, and its log's last word now (a
            # later start appends to the same log).
            what = (f"start #{self.starts} exited with status {self.proc.returncode}, seen at "
                    f"{time.strftime('%H:%M:%S')}: {self.exit_reason()}")
            self.crashes.append((self.proc.returncode, time.monotonic(), what))
            self.reaper.remove(self.proc.pid)
            self.proc = None
            self.paused = False
            return True
        return False

    def signal(self, sig):
        if self.running():
            try:
                self.proc.send_signal(sig)
            except OSError:
                pass

    def pause(self):
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        self.signal(signal.SIGCONT)
        self.paused = False

    def kill(self):
        if self.check_exit():
            return
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.reaper.remove(self.proc.pid)
        self.proc = None
        self.paused = False

    def stop(self, timeout=15):
        """Graceful: SIGCONT, SIGTERM, wait; SIGKILL after `timeout`. Returns False if it had to kill."""
        if self.check_exit():
            return True
        if self.proc is None:
            return True
        graceful = True
        self.resume()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            graceful = False
            self.proc.kill()
            self.proc.wait()
        self.reaper.remove(self.proc.pid)
        self.proc = None
        self.paused = False
        return graceful

    def wipe(self):
        """Empties the data directory; the node must be stopped."""
        assert self.proc is None
        os.makedirs(self.dir, exist_ok=True)
        for name in os.listdir(self.dir):
            path = os.path.join(self.dir, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
        self.join = True

    def exit_reason(self):
        """The last 'cannot start' / error line of the log, or its last line."""
        tail = self.log_tail(30).splitlines()
        for line in reversed(tail):
            if "cannot start" in line or "[error]" in line or "[critical]" in line:
                return line.strip()[:400]
        return (tail[-1].strip()[:400] if tail else "no log")

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read().decode(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(data[-lines:])

    # -------------------------------------------------------------- HTTP
    def request(self, method, path, body=None, headers=None, timeout=5.0):
        c = http.client.HTTPConnection(HOST, self.http_port, timeout=timeout)
        try:
            data = json.dumps(body) if body is not None else None
            h = {"Content-Type": "application/json"} if data else {}
            h.update(headers or {})
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            text = r.read().decode()
            return r.status, (json.loads(text) if text else None)
        finally:
            c.close()

    def status(self, timeout=1.0):
        if not self.running() or self.paused:
            return None
        try:
            code, body = self.request("GET", "/raft/status", timeout=timeout)
            return body if code == 200 else None
        except (OSError, http.client.HTTPException, ValueError):
            return None


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
        self.disks = {}

    def make_disks(self):
        """Puts every node's data directory on its own loop-mounted ext4 (disk.py);
        returns None or why not (then nothing stays mounted)."""
        from disk import LoopDisk
        os.makedirs(os.path.join(self.root, "disks"), exist_ok=True)
        for i, n in sorted(self.nodes.items()):
            # The data directory is a subdirectory: a fresh ext4 holds lost+found.
            mnt = os.path.join(self.root, f"disk{i}")
            d = LoopDisk(os.path.join(self.root, "disks", f"node{i}.img"), mnt)
            self.reaper.watch_mount(mnt)
            why = d.create()
            if why:
                d.umount()
                self.umount_disks()
                return f"node {i}: {why}"
            self.disks[i] = d
            n.dir = os.path.join(mnt, "data")
            os.makedirs(n.dir)
        return None

    def make_live_clocks(self, lib):
        """Starts every node under libfaketime reading its wall-clock offset from
        a file, so a fault can move a running node's clock; the offset starts
        at +0, the monotonic clock and file times stay real. The file is read
        on every wall-clock call (about 15 us each): libfaketime's cache
        expires by the faked clock, so after a jump back it would keep the old
        offset for as long as the jump."""
        for i, n in sorted(self.nodes.items()):
            n.clock_file = os.path.join(self.root, f"node{i}.faketime")
            self.set_clock(i, "+0")
            n.base_env = {"LD_PRELOAD": lib, "FAKETIME_TIMESTAMP_FILE": n.clock_file, "FAKETIME_NO_CACHE": "1",
                          "FAKETIME_DONT_FAKE_MONOTONIC": "1", "NO_FAKE_STAT": "1"}

    def set_clock(self, nid, offset):
        """Moves node nid's wall clock to real time + offset (libfaketime syntax: +1d, -1h, +0)
        at its next wall-clock call, without a restart."""
        path = self.nodes[nid].clock_file
        with open(path + ".tmp", "w") as f:
            f.write(offset + "\n")
        os.replace(path + ".tmp", path)

    def umount_disks(self):
        for d in self.disks.values():
            d.umount()
            self.reaper.unwatch_mount(d.mount_point)
        self.disks = {}

    def book_address(self, src, dst):
        """The Raft address node src has for node dst in its --cluster list (its address book)."""
        if src == dst or not self.net.pairs:
            return f"{HOST}:{self.real[dst]}"
        return self.net.address(src, dst)

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
        self.umount_disks()
        self.reaper.unwatch_dir(self.root)  # the driver removes it (after keeping what a failure needs)
        self.reaper.close()
