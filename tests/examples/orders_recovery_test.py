#!/usr/bin/env python3
"""Disaster recovery with the real catga-orders binary on 127.0.0.1
(docs/operations.md, "Backup and restore", "Losing the majority"):

- an online backup through POST /raft/backup restores, with --restore-from,
  into a NEW one-member cluster that has exactly the backed-up orders and
  grows with --join;
- after losing two of three members for good, --force-new-cluster makes the
  survivor a one-member cluster with every acknowledged order, a lost
  member's old data directory is refused, and the cluster grows back to three.

Usage: orders_recovery_test.py PATH/TO/catga-orders"""
import http.client, json, os, shutil, subprocess, sys, tempfile, unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import demo  # Node, free_pair, free_port, wait_until, leader_of

BINARY = None
TOKEN = "recovery-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

def raw(node, method, path, headers=None, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=timeout)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()

def cluster_arg(nodes):
    return ",".join(f"{n.id}=127.0.0.1:{n.raft_port}" for n in nodes)

class Recovery(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="catga-orders-recovery-")
        self.nodes = []

    def tearDown(self):
        for n in self.nodes:
            n.kill()
            n.log.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def node(self, nid, extra=(), sub="old"):
        root = os.path.join(self.root, sub)
        os.makedirs(root, exist_ok=True)
        n = demo.Node(BINARY, nid, demo.free_pair(), demo.free_port(), "", root, ["--admin-token", TOKEN] + list(extra))
        self.nodes.append(n)
        return n

    def start_cluster(self, n=3):
        nodes = [self.node(i + 1) for i in range(n)]
        for x in nodes: x.cluster = cluster_arg(nodes)
        for x in nodes: x.start()
        leader = demo.wait_until(lambda: demo.leader_of(nodes), limit=60)
        self.assertIsNotNone(leader, "no leader")
        # Two members elect a leader while the third may still be starting
        # (on a loaded machine its HTTP port opens later): wait for every one.
        for x in nodes:
            self.assertTrue(demo.wait_until(lambda: x.status() is not None, limit=60),
                            f"node {x.id} does not answer (alive {x.alive()}); its log ends:\n{x.log_tail()}")
        return nodes, leader


    def create(self, node, count, prefix):
        ids = []
        for i in range(count):
            code, order = node.request("POST", "/orders", {"product_id": f"{prefix}{i}", "quantity": 1},
                                       {"Idempotency-Key": f"{prefix}{i}"})
            self.assertEqual(code, 201, order)
            ids.append(order["id"])
        return ids

    def present(self, node, ids, consistency="linearizable"):
        return sum(1 for i in ids if node.request("GET", f"/orders/{i}?consistency={consistency}")[0] == 200)

    def grow(self, leader, members, nid, cluster_id, sub):
        """Starts member `nid` empty with --join and adds it through `leader`."""
        n = self.node(nid, extra=["--join", "--cluster-id", cluster_id], sub=sub)
        members.append(n)
        n.cluster = cluster_arg(members)
        n.start()
        body = {"id": nid, "address": f"127.0.0.1:{n.raft_port}", "role": "voter"}
        code = None
        for _ in range(100):
            code, answer = leader.request("POST", "/raft/members", body, AUTH)
            if code != 409: break
            demo.wait_until(lambda: False, limit=0.1)
        self.assertEqual(code, 204, answer)
        return n

    def test_backup_restores_into_a_new_cluster_that_grows(self):
        nodes, leader = self.start_cluster()
        kept = self.create(leader, 20, "kept-")
        follower = next(n for n in nodes if n is not leader)
        self.assertEqual(raw(leader, "POST", "/raft/backup")[0], 401)
        self.assertEqual(raw(follower, "POST", "/raft/backup", AUTH)[0], 503)
        code, headers, backup = raw(leader, "POST", "/raft/backup", AUTH)
        self.assertEqual(code, 200, backup[:200])
        self.assertTrue(backup.startswith(b"catga-backup 1\n"))
        self.assertIn(b"cluster_id=catga-orders\n", backup)
        later = self.create(leader, 5, "later-")
        path = os.path.join(self.root, "orders.catga-backup")
        with open(path, "wb") as f: f.write(backup)
        for n in nodes: n.kill()  # the disaster

        first = self.node(1, extra=["--restore-from", path, "--cluster-id", "orders-restored"], sub="restored")
        first.cluster = cluster_arg([first])
        first.start()
        self.assertTrue(demo.wait_until(lambda: (first.status() or {}).get("ready"), limit=60), "restored node not ready")
        self.assertEqual(self.present(first, kept), len(kept))
        self.assertEqual(self.present(first, later), 0)
        fresh = self.create(first, 3, "fresh-")
        second = self.grow(first, [first], 2, "orders-restored", "restored")
        commit = first.status()["commit_index"]
        self.assertTrue(demo.wait_until(lambda: (second.status() or {}).get("applied_index", 0) >= commit, limit=60))
        self.assertEqual(self.present(second, kept + fresh, "local"), len(kept) + len(fresh))
        # Started again with --restore-from on its now full directory: refused, nothing changed.
        first.stop()
        again = subprocess.run([BINARY, "--id", "1", "--data-dir", first.dir, "--http", "127.0.0.1:0",
                                "--cluster", cluster_arg([first]), "--cluster-id", "orders-restored",
                                "--restore-from", path], capture_output=True, text=True, timeout=60)
        self.assertEqual(again.returncode, 1, again.stderr)
        self.assertIn("not empty", again.stderr)

    def test_force_new_cluster_keeps_acknowledged_orders_and_grows_back(self):
        nodes, leader = self.start_cluster()
        acknowledged = self.create(leader, 30, "acked-")
        lost = [n for n in nodes if n is not leader]
        for n in lost: n.kill()  # a majority lost for good
        leader.stop()
        leader.extra += ["--force-new-cluster", "--cluster-id", "orders-recovered"]
        leader.cluster = cluster_arg(nodes)
        leader.start()
        self.assertTrue(demo.wait_until(lambda: (leader.status() or {}).get("ready"), limit=60), "survivor not ready")
        self.assertEqual(len(leader.status()["members"]), 1)
        self.assertEqual(self.present(leader, acknowledged), len(acknowledged))

        # A lost member's old directory is refused by the recovered cluster's id.
        old = lost[0]
        refused = subprocess.run([BINARY, "--id", str(old.id), "--data-dir", old.dir, "--http", "127.0.0.1:0",
                                  "--cluster", cluster_arg(nodes), "--cluster-id", "orders-recovered"],
                                 capture_output=True, text=True, timeout=60)
        self.assertEqual(refused.returncode, 1, refused.stderr)
        self.assertIn("cluster 'catga-orders'", refused.stderr)

        members = [leader]
        for nid in (4, 5): self.grow(leader, members, nid, "orders-recovered", "old")
        self.assertEqual(len(leader.status()["members"]), 3)
        more = self.create(leader, 3, "more-")
        commit = leader.status()["commit_index"]
        for n in members[1:]:
            self.assertTrue(demo.wait_until(lambda: (n.status() or {}).get("applied_index", 0) >= commit, limit=60))
            self.assertEqual(self.present(n, acknowledged + more, "local"), len(acknowledged) + len(more))

if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
