#!/usr/bin/env python3
"""Members named by DNS names, in a private mount namespace whose /etc/hosts
this test writes (names -> 127.0.0.x; nothing outside the namespace sees it).

- 3 catga-orders nodes, each `--cluster ID=NAME:PORT/NAME:PEER_PORT` with a
  peer port that is not the Raft port + 1; commands sent to followers are
  forwarded to the leader by name.
- A member whose address changes under the same name (stopped, its name moved
  to another 127.0.0.x, restarted) catches up and leads again, and followers
  forward to it at its new address: Raft and the peer channel re-resolve.
- HTTP on an IPv6 literal, `--http [::1]:PORT`.
- A 4th member added at runtime through POST /raft/members with its peer
  address: every node lists it, and a node whose --cluster does not name it
  forwards to it (the peer address travels in the Raft configuration).

Needs root and unshare (util-linux) for the namespace; otherwise it exits 77
(skipped) saying why. Usage: orders_names_test.py PATH/TO/catga-orders"""
import os, shutil, subprocess, sys, tempfile, unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import demo  # Node, free_pair, free_port, wait_until, leader_of

ORDERS = None
SKIP = 77
DOMAIN = "catga-names.test"


def name(nid):
    return f"node{nid}.{DOMAIN}"


class Member(demo.Node):
    def __init__(self, nid, root, extra=()):
        super().__init__(ORDERS, nid, demo.free_pair(), demo.free_port(), "", root, extra)
        self.peer_port = demo.free_port()
        while self.peer_port in (self.raft_port, self.raft_port + 1):
            self.peer_port = demo.free_port()

    def item(self):
        return f"{self.id}={name(self.id)}:{self.raft_port}/{name(self.id)}:{self.peer_port}"


class Names(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="catga-names-test-")
        self.hosts = os.path.join(self.root, "hosts")
        self.ips = {}
        self.nodes = []
        self.passed = False  # set by each test's last line
        self.write_hosts({1: "127.0.0.2", 2: "127.0.0.3", 3: "127.0.0.4"})
        subprocess.run(["mount", "--bind", self.hosts, "/etc/hosts"], check=True)

    def tearDown(self):
        for n in self.nodes:
            n.stop()
            n.log.close()
        subprocess.run(["umount", "/etc/hosts"], check=False)
        for n in self.nodes if not self.passed else []:  # the tail of each node's log, for the failure's report
            with open(os.path.join(self.root, f"node{n.id}.log"), errors="replace") as f:
                print(f"--- node {n.id} log (tail)\n{f.read()[-1500:]}", file=sys.stderr)
        shutil.rmtree(self.root, ignore_errors=True)

    def write_hosts(self, ips):
        """Rewrites the file in place: the bind mount keeps its inode."""
        self.ips.update(ips)
        with open(self.hosts, "w") as f:
            f.write("127.0.0.1 localhost\n")
            for nid, ip in sorted(self.ips.items()): f.write(f"{ip} {name(nid)}\n")

    def leader(self):
        leader = demo.wait_until(lambda: demo.leader_of(self.nodes), limit=60)
        self.assertIsNotNone(leader, "no ready leader")
        return leader

    def create(self, via, key, limit=60):
        """An order created through `via` (forwarded when it is a follower),
        retried with the same key (applied at most once) for `limit` seconds."""
        last = []
        def attempt():
            try:
                code, body = via.request("POST", "/orders", {"product_id": "p", "quantity": 1}, {"Idempotency-Key": key},
                                         timeout=5)
            except OSError as e:
                code, body = 0, str(e)
            last[:] = [code, body]
            if code == 201: return body["id"]
            demo.wait_until(lambda: False, limit=0.1)
            return None
        created = demo.wait_until(attempt, limit=limit)
        self.assertIsNotNone(created, f"order {key} through node {via.id}: {last}")
        return created

    def has(self, node, ids):
        def ok():
            try:
                return all(node.request("GET", f"/orders/{i}?consistency=local")[0] == 200 for i in ids)
            except OSError:
                return False
        return demo.wait_until(ok, limit=60)

    def transfer(self, to):
        for _ in range(100):
            leader = self.leader()
            if leader.id == to.id: return
            code, answer = leader.request("POST", "/raft/leadership", {"to": to.id})
            if code == 204 and demo.wait_until(lambda: demo.leader_of(self.nodes) is to, limit=10): return
            demo.wait_until(lambda: False, limit=0.2)
        self.fail(f"leadership did not move to node {to.id}")

    def test_names_moved_address_and_runtime_peer_address(self):
        nodes = self.nodes
        nodes += [Member(i, self.root) for i in (1, 2, 3)]
        for n in nodes: n.cluster = ",".join(m.item() for m in nodes)
        for n in nodes: n.start()
        self.leader()
        ids = [self.create(n, f"first-{n.id}") for n in nodes]  # two of them forwarded by name
        for n in nodes: self.assertTrue(self.has(n, ids), f"node {n.id} lacks {ids}")
        status = nodes[0].status()
        self.assertEqual({m["id"]: (m["address"], m["peer_address"]) for m in status["members"]},
                         {n.id: (f"{name(n.id)}:{n.raft_port}", f"{name(n.id)}:{n.peer_port}") for n in nodes})

        # Node 3 leads, node 1 forwards to it (connection to 127.0.0.4); node 3
        # stops, its name moves to 127.0.0.5, it restarts and leads again.
        moved = nodes[2]
        self.transfer(moved)
        ids.append(self.create(nodes[0], "to-old-address"))
        moved.stop()
        self.write_hosts({moved.id: "127.0.0.5"})
        ids.append(self.create(nodes[0], "while-away"))
        moved.start()
        self.assertTrue(self.has(moved, ids), "the moved node did not catch up under its name")
        self.transfer(moved)
        ids.append(self.create(nodes[0], "to-new-address"))
        ids.append(self.create(nodes[1], "to-new-address-2"))
        for n in nodes: self.assertTrue(self.has(n, ids), f"node {n.id} lacks {ids}")

        # A 4th member added at runtime with its peer address; nodes 1-3 were
        # started without it, so only the configuration tells them.
        leader = self.leader()
        for bad, says in (({"address": "[::1]:7009"}, "IPv6 is not supported by the Raft transport"),
                          ({"address": f"{name(4)}:7009", "peer_address": "node_4:7010"}, "DNS name")):
            code, answer = leader.request("POST", "/raft/members", dict(bad, id=4, role="voter"))
            self.assertEqual(code, 400, answer)
            self.assertIn(says, answer["error"]["message"])
        self.write_hosts({4: "127.0.0.6"})
        joiner = Member(4, self.root, ["--join"])
        nodes.append(joiner)
        joiner.cluster = ",".join(m.item() for m in nodes)
        joiner.start()
        body = {"id": 4, "address": f"{name(4)}:{joiner.raft_port}", "peer_address": f"{name(4)}:{joiner.peer_port}",
                "role": "voter"}
        for _ in range(100):
            code, answer = self.leader().request("POST", "/raft/members", body)
            if code not in (409, 503): break
            demo.wait_until(lambda: False, limit=0.2)
        self.assertEqual(code, 204, answer)
        for n in nodes:
            members = demo.wait_until(lambda: {m["id"]: m for m in (n.status() or {}).get("members", [])}.get(4), limit=30)
            self.assertIsNotNone(members, f"node {n.id} does not list member 4")
            self.assertEqual(members["peer_address"], f"{name(4)}:{joiner.peer_port}")
        self.transfer(joiner)
        ids.append(self.create(nodes[0], "to-runtime-member"))
        ids.append(self.create(nodes[2], "to-runtime-member-2"))
        for n in nodes: self.assertTrue(self.has(n, ids), f"node {n.id} lacks {ids}")
        self.passed = True

    def test_http_on_an_ipv6_literal(self):
        import http.client, socket
        try:
            probe = socket.socket(socket.AF_INET6); probe.bind(("::1", 0)); port = probe.getsockname()[1]; probe.close()
        except OSError:
            self.skipTest("no IPv6 loopback here")
        log = open(os.path.join(self.root, "ipv6.log"), "wb")
        proc = subprocess.Popen([ORDERS, "--id", "1", "--data-dir", os.path.join(self.root, "ipv6"), "--http", f"[::1]:{port}",
                                 "--log-level", "warn"], stdout=log, stderr=log)
        try:
            def ready():
                c = http.client.HTTPConnection("::1", port, timeout=2)
                try:
                    c.request("GET", "/health/live")
                    return c.getresponse().status == 200
                except OSError:
                    return False
                finally:
                    c.close()
            self.assertTrue(demo.wait_until(ready, limit=30), "no answer on [::1]")
        finally:
            proc.terminate()
            self.assertEqual(proc.wait(timeout=30), 0)
            log.close()
        self.passed = True

    def test_bad_names_are_refused_at_start(self):
        n = Member(1, self.root)
        self.nodes.append(n)
        for cluster, says in ((f"1={name(1)}:{n.raft_port},2=[::1]:7002", "IPv6 is not supported by the Raft transport"),
                              (f"1=bad_name:{n.raft_port}", "DNS name")):
            n.cluster = cluster
            n.start()
            self.assertEqual(n.proc.wait(timeout=30), 1)
            with open(os.path.join(self.root, "node1.log")) as f: self.assertIn(says, f.read())
        self.passed = True


def main():
    global ORDERS
    ORDERS = os.path.abspath(sys.argv.pop(1))
    if os.environ.get("CATGA_NAMES_TEST_NS") != "1":
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            print("orders_names_test: SKIPPED: needs root and unshare to give the test its own /etc/hosts")
            return SKIP
        probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "true"], capture_output=True, text=True)
        if probe.returncode != 0:
            print(f"orders_names_test: SKIPPED: cannot make a mount namespace: {probe.stderr.strip()}")
            return SKIP
        env = dict(os.environ, CATGA_NAMES_TEST_NS="1")
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "--", sys.executable,
                               os.path.abspath(__file__), ORDERS] + sys.argv[1:], env=env).returncode
    return 0 if unittest.main(exit=False).result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
