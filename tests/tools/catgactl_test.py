#!/usr/bin/env python3
"""catgactl against a real 3-node cluster of catga-orders processes on
127.0.0.1 (free ports, own directory): status and health tables and JSON,
members list/add/promote/remove (a 4th node joins), leader transfer,
snapshot, backup, the admin token, unreachable endpoints and bad usage; then
https endpoints against a one-member cluster serving HTTPS that requires a
client certificate (--cacert, --cert, --key).
Usage: catgactl_test.py PATH/TO/catgactl PATH/TO/catga-orders"""
import json, os, shutil, subprocess, sys, tempfile, unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import demo  # Node, free_pair, free_port, wait_until, leader_of

CATGACTL = ORDERS = None
TOKEN = "catgactl-test-token"


def cluster_arg(nodes):
    return ",".join(f"{n.id}=127.0.0.1:{n.raft_port}" for n in nodes)


def all_know_the_leader(nodes):
    statuses = [n.status() for n in nodes]
    return all(s and s["leader"]["known"] for s in statuses)


class Catgactl(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="catgactl-test-")
        cls.nodes = [demo.Node(ORDERS, i, demo.free_pair(), demo.free_port(), "", cls.root, ["--admin-token", TOKEN])
                     for i in (1, 2, 3)]
        for n in cls.nodes: n.cluster = cluster_arg(cls.nodes)
        for n in cls.nodes: n.start()
        # Every member, not only the leader, must know the leader before the tests start: a member that has
        # not heard from it yet is rightly unhealthy, and a leadership transfer to it rightly aborts.
        if not demo.wait_until(lambda: demo.leader_of(cls.nodes) and all_know_the_leader(cls.nodes), limit=60):
            cls.tearDownClass()
            raise RuntimeError("no leader known to every member")
        cls.endpoints = ",".join(f"127.0.0.1:{n.http_port}" for n in cls.nodes)

    @classmethod
    def tearDownClass(cls):
        for n in cls.nodes: n.stop()
        shutil.rmtree(cls.root, ignore_errors=True)

    def ctl(self, *args, token=TOKEN, endpoints=None, expect=0):
        cmd = [CATGACTL, "--endpoints", endpoints or self.endpoints, "--timeout-ms", "20000"]
        if token: cmd += ["--token", token]
        r = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=120)
        if expect is not None: self.assertEqual(r.returncode, expect, f"{args}: {r.stdout}{r.stderr}")
        return r

    def leader_id(self):
        """The id of the ready leader (waits for one: changes go to it)."""
        leader = demo.wait_until(lambda: demo.leader_of(self.nodes), limit=60)
        self.assertIsNotNone(leader, "no ready leader")
        return leader.id

    def test_status_table_and_json(self):
        self.leader_id()
        table = self.ctl("status").stdout.splitlines()
        self.assertEqual(table[0].split()[:4], ["ENDPOINT", "ID", "ROLE", "TERM"])
        self.assertEqual(len(table), 4)
        rows = json.loads(self.ctl("-o", "json", "status").stdout)
        self.assertEqual(sorted(r["status"]["id"] for r in rows), [1, 2, 3])
        self.assertTrue(demo.wait_until(lambda: sum(r["status"]["role"] == "leader" for r in json.loads(
            self.ctl("-o", "json", "status").stdout)) == 1, limit=30), "not exactly one leader")

    def test_health(self):
        # Polled without asserting the exit status: health exits 1 while any member is unhealthy.
        self.assertTrue(demo.wait_until(lambda: all(r["health"]["status"] == "healthy" for r in json.loads(
            self.ctl("-o", "json", "health", expect=None).stdout)), limit=30), self.ctl("health", expect=None).stdout)
        self.assertIn("healthy", self.ctl("health").stdout)

    def test_unreachable_endpoint_is_reported_and_fails(self):
        dead = f"127.0.0.1:{demo.free_port()}"
        r = self.ctl("health", endpoints=f"{self.endpoints},{dead}", expect=1)
        self.assertIn("unreachable", r.stdout)
        r = self.ctl("status", endpoints=dead, expect=1)
        self.assertIn(dead, r.stdout)

    def test_members_add_promote_remove(self):
        table = self.ctl("members", "list").stdout
        for n in self.nodes: self.assertIn(f"127.0.0.1:{n.raft_port}", table)
        joiner = demo.Node(ORDERS, 4, demo.free_pair(), demo.free_port(), "", self.root, ["--admin-token", TOKEN, "--join"])
        peer = f"127.0.0.1:{demo.free_port()}"  # not the Raft port + 1: kept in the configuration
        joiner.cluster = cluster_arg(self.nodes) + f",4=127.0.0.1:{joiner.raft_port}/{peer}"
        joiner.start()
        try:
            self.leader_id()
            # A peer address is added once every member announced a build that reads it (the version guard).
            self.assertTrue(demo.wait_until(lambda: all(len(r["status"].get("announcements", [])) == 3 for r in json.loads(
                self.ctl("-o", "json", "status").stdout)), limit=30), "members did not announce")
            # The leader asks the node at the peer address who it is before adding it: wait until it serves.
            def serving():
                try: return joiner.request("GET", "/health/live", timeout=2)[0] is not None
                except OSError: return False
            self.assertTrue(demo.wait_until(serving, limit=30), "the joiner did not start")
            r = self.ctl("members", "add", "4", f"127.0.0.1:{joiner.raft_port}", "--role", "spare", "--peer-address", peer)
            self.assertIn("member 4 added as spare", r.stdout)
            members = json.loads(self.ctl("-o", "json", "members", "list").stdout)
            self.assertEqual({m["id"]: m["role"] for m in members}[4], "spare")
            self.assertEqual({m["id"]: m.get("peer_address") for m in members}[4], peer)
            self.assertIn(peer, self.ctl("members", "list").stdout)
            self.leader_id()
            self.ctl("members", "promote", "4", "--role", "standby")
            self.assertTrue(demo.wait_until(lambda: {m["id"]: m["role"] for m in json.loads(
                self.ctl("-o", "json", "members", "list").stdout)}.get(4) == "standby", limit=30))
            self.leader_id()
            self.ctl("members", "remove", "4")
            members = json.loads(self.ctl("-o", "json", "members", "list").stdout)
            self.assertNotIn(4, [m["id"] for m in members])
        finally:
            joiner.stop()

    def test_leader_transfer(self):
        before = self.leader_id()
        self.assertTrue(demo.wait_until(lambda: all_know_the_leader(self.nodes), limit=60), "a member never heard the leader")
        target = next(n.id for n in self.nodes if n.id != before)
        r = self.ctl("leader", "transfer", str(target))
        self.assertIn(f"leadership transferred to {target}", r.stdout)
        self.assertEqual(self.leader_id(), target)

    def test_snapshot_and_backup(self):
        self.leader_id()
        r = json.loads(self.ctl("-o", "json", "snapshot").stdout)
        self.assertGreater(r["index"], 0)
        path = os.path.join(self.root, "cluster.catga-backup")
        r = json.loads(self.ctl("-o", "json", "backup", path).stdout)
        self.assertTrue(os.path.exists(path))
        self.assertEqual(os.path.getsize(path), r["bytes"])
        self.assertGreater(r["index"], 0)
        self.assertFalse(os.path.exists(path + ".partial"))

    def test_restore_into_a_new_cluster(self):
        leader = demo.wait_until(lambda: demo.leader_of(self.nodes), limit=60)
        self.assertIsNotNone(leader)
        code, order = leader.request("POST", "/orders", {"product_id": "restored-1", "quantity": 3})
        self.assertEqual(code, 201, order)
        path = os.path.join(self.root, "restore.catga-backup")
        self.ctl("backup", path)
        root = os.path.join(self.root, "restored")
        os.makedirs(root)
        node = demo.Node(ORDERS, 1, demo.free_pair(), demo.free_port(), "", root,
                         ["--admin-token", TOKEN, "--cluster-id", "orders-restored"])
        node.cluster = f"1=127.0.0.1:{node.raft_port}"
        args = ["restore", path, "--data-dir", node.dir, "--cluster", node.cluster]
        # The old cluster still answers: refused, nothing written.
        r = self.ctl(*args, "--cluster-id", "orders-restored", expect=1)
        self.assertIn("still answers", r.stderr)
        self.assertFalse(os.path.exists(node.dir))
        dead = f"127.0.0.1:{demo.free_port()}"  # the old cluster, stopped
        r = self.ctl(*args, "--cluster-id", "catga-orders", endpoints=dead, expect=1)
        self.assertIn("NEW cluster", r.stderr)
        r = json.loads(self.ctl("-o", "json", *args, "--cluster-id", "orders-restored", endpoints=dead).stdout)
        self.assertEqual((r["backup_cluster_id"], r["cluster_id"], r["old_cluster_checked"]),
                         ("catga-orders", "orders-restored", True))
        self.assertIn(f"--cluster {node.cluster} --cluster-id orders-restored", r["start"])
        # Started as the output says, it serves the backed-up state.
        try:
            node.start()
            self.assertIsNotNone(demo.wait_until(lambda: demo.leader_of([node]), limit=60), "restored node never leads")
            code, found = node.request("GET", f"/orders/{order['id']}")
            self.assertEqual(code, 200, found)
            self.assertEqual(found["product_id"], "restored-1")
        finally:
            node.stop()
            node.log.close()
        r = self.ctl(*args, "--cluster-id", "orders-restored", endpoints=dead, expect=1)
        self.assertIn("not empty", r.stderr)

    def test_changes_need_the_token(self):
        self.leader_id()
        r = self.ctl("snapshot", token=None, expect=1)
        self.assertIn("401 unauthenticated", r.stderr)
        r = self.ctl("leader", "transfer", token="wrong", expect=1)
        self.assertIn("401", r.stderr)

    def test_bad_usage(self):
        self.ctl("members", "add", "x", "127.0.0.1:1", expect=105)  # CLI11: a conversion error
        r = self.ctl("status", endpoints="https://127.0.0.1:1,127.0.0.1:x", expect=1)
        self.assertIn("has a bad port", r.stderr)
        r = self.ctl("status", endpoints="nohost", expect=1)
        self.assertIn("is not HOST:PORT", r.stderr)



class CatgactlTls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="catgactl-tls-test-")
        cls.ca = demo.make_pki(cls.root, ["node1"], clients=["operator"])
        f = lambda name: os.path.join(cls.root, name)
        raft = demo.free_pair()
        cls.node = demo.Node(ORDERS, 1, raft, demo.free_port(), f"1=127.0.0.1:{raft}", cls.root,
                             ["--admin-token", TOKEN, "--http-tls-cert-file", f("node1.crt"), "--http-tls-key-file", f("node1.key"),
                              "--http-tls-client-ca-file", cls.ca, "--http-tls-client-certs", "required"])
        cls.node.start()
        cls.client = ["--cert", f("operator.crt"), "--key", f("operator.key")]
        cls.endpoint = f"https://127.0.0.1:{cls.node.http_port}"
        ok = demo.wait_until(lambda: subprocess.run(
            [CATGACTL, "--endpoints", cls.endpoint, "--cacert", cls.ca] + cls.client + ["health"],
            capture_output=True).returncode == 0, limit=60)
        if not ok:
            cls.tearDownClass()
            raise RuntimeError("the TLS node never became healthy")

    @classmethod
    def tearDownClass(cls):
        cls.node.stop()
        shutil.rmtree(cls.root, ignore_errors=True)

    def ctl(self, *args, expect=0):
        r = subprocess.run([CATGACTL, "--timeout-ms", "20000", "--token", TOKEN] + list(args),
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, expect, f"{args}: {r.stdout}{r.stderr}")
        return r

    def test_status_and_snapshot_over_https_with_a_client_certificate(self):
        rows = json.loads(self.ctl("--endpoints", self.endpoint, "--cacert", self.ca, *self.client,
                                   "-o", "json", "status").stdout)
        self.assertEqual(rows[0]["status"]["role"], "leader")
        self.assertEqual(rows[0]["endpoint"], self.endpoint)
        self.assertIn("snapshot covering index", self.ctl("--endpoints", self.endpoint, "--cacert", self.ca,
                                                          *self.client, "snapshot").stdout)

    def test_a_bare_endpoint_is_https_once_a_tls_file_is_given(self):
        bare = f"127.0.0.1:{self.node.http_port}"
        self.ctl("--endpoints", bare, "--cacert", self.ca, *self.client, "members", "list")

    def test_refusals_are_explained(self):
        # No CA given: the system's CAs do not know the demo CA.
        r = self.ctl("--endpoints", self.endpoint, *self.client, "status", expect=1)
        self.assertIn("certificate verify failed", r.stdout)
        # The server requires a client certificate: no answer without one.
        r = self.ctl("--endpoints", self.endpoint, "--cacert", self.ca, "members", "list", expect=1)
        self.assertIn("no endpoint in --endpoints answered", r.stderr)
        # Plain HTTP to the TLS port gets no HTTP answer.
        r = self.ctl("--endpoints", f"http://127.0.0.1:{self.node.http_port}", "health", expect=1)
        self.assertIn("unreachable", r.stdout)
        r = self.ctl("--endpoints", self.endpoint, "--cacert", os.path.join(self.root, "absent.crt"), "status",
                     expect=1)
        self.assertIn("--cacert", r.stdout + r.stderr)
        r = self.ctl("--endpoints", self.endpoint, "--cert", os.path.join(self.root, "operator.crt"), "health",
                     expect=1)
        self.assertIn("--cert and --key go together", r.stderr)

if __name__ == "__main__":
    CATGACTL, ORDERS = sys.argv.pop(1), sys.argv.pop(1)
    unittest.main()
