#!/usr/bin/env python3
"""The cluster secret rotated as docs/security.md ("Changing the secret")
tells an operator to: three catga-orders processes on 127.0.0.1, each with
its own --peer-secret-file; three phases of file edits, each followed by
SIGHUP on every member (add the new secret as accepted, make it the
member's own, drop the old one), and the cluster commits orders after every
phase without a restart. Then the old secret is really retired: a member
restarted with only the old secret is refused by the others (one log line)
and applies nothing new, and once its file holds the new secret it catches up.
Usage: orders_secret_test.py PATH/TO/catga-orders"""
import os, re, shutil, signal, sys, tempfile, unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import demo  # Node, free_pair, free_port, wait_until, leader_of

BINARY = None
OLD, NEW = "old-cluster-secret-0123456789", "new-cluster-secret-0123456789"
# What the member holding only the retired secret logs (the others' proofs fail), and what the others log
# (it hangs up right after their proof), whichever side dials.
STALE_REFUSES = re.compile(r"connection to member \d+ at \S+ refused: it does not hold the cluster secret")
OTHERS_REFUSED = re.compile(r"refused: (wrong cluster secret|closed by the peer after this node proved its secret)")


class OrdersSecretRotation(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="catga-orders-secret-")
        self.nodes = [demo.Node(BINARY, i, demo.free_pair(), demo.free_port(), "", self.root, log_level="info")
                      for i in (1, 2, 3)]
        cluster = ",".join(f"{n.id}=127.0.0.1:{n.raft_port}" for n in self.nodes)
        for n in self.nodes:
            n.cluster = cluster
            n.secret_file = os.path.join(self.root, f"node{n.id}.secret")
            self.write_secrets(n, OLD)
            n.extra += ["--peer-secret-file", n.secret_file]
            n.start()

    def tearDown(self):
        for n in self.nodes:
            n.stop()
            n.log.close()
        shutil.rmtree(self.root, ignore_errors=True)

    @staticmethod
    def write_secrets(node, *secrets):
        """Written beside the file and renamed into place, as an operator's tooling should."""
        partial = node.secret_file + ".partial"
        with open(partial, "w") as f:
            f.write("".join(s + "\n" for s in secrets))
        os.chmod(partial, 0o600)
        os.replace(partial, node.secret_file)

    def log_of(self, node):
        node.log.flush()
        with open(os.path.join(self.root, f"node{node.id}.log"), errors="replace") as f:
            return f.read()

    def leader(self):
        leader = demo.wait_until(lambda: demo.leader_of(self.nodes), limit=60)
        self.assertIsNotNone(leader, "no ready leader")
        return leader

    def create_order(self, product):
        def attempt():
            try:
                code, order = self.leader().request("POST", "/orders", {"product_id": product, "quantity": 1})
            except OSError:
                return None
            return order if code == 201 else None
        order = demo.wait_until(attempt, limit=60)
        self.assertIsNotNone(order, f"order {product} was not created")
        return order

    def applied(self, node):
        s = node.status()
        return s["applied_index"] if s else -1

    def all_applied(self, index, nodes=None):
        return demo.wait_until(lambda: all(self.applied(n) >= index for n in nodes or self.nodes), limit=60)

    def commit_index(self):
        return self.leader().status()["commit_index"]

    def sighup_everywhere(self, accepted_besides_own):
        expected = f"(its own and {accepted_besides_own} more accepted)"
        before = {n.id: self.log_of(n).count(expected) for n in self.nodes}
        for n in self.nodes:
            n.proc.send_signal(signal.SIGHUP)
        for n in self.nodes:
            self.assertTrue(demo.wait_until(lambda: self.log_of(n).count(expected) > before[n.id], limit=30),
                            f"member {n.id} did not log the reload: {self.log_of(n)[-2000:]}")

    def test_the_secret_rotates_without_a_restart_and_the_old_one_is_retired(self):
        self.create_order("before")
        self.assertTrue(self.all_applied(self.commit_index()))

        for n in self.nodes: self.write_secrets(n, OLD, NEW)  # 1: the new one accepted
        self.sighup_everywhere(1)
        self.create_order("phase-1")
        for n in self.nodes: self.write_secrets(n, NEW, OLD)  # 2: the new one proved
        self.sighup_everywhere(1)
        self.create_order("phase-2")
        for n in self.nodes: self.write_secrets(n, NEW)  # 3: the old one gone
        self.sighup_everywhere(0)
        self.create_order("phase-3")
        self.assertTrue(self.all_applied(self.commit_index()), "a member fell behind during the rotation")
        for n in self.nodes:  # the documented order never refuses a member
            self.assertIsNone(OTHERS_REFUSED.search(self.log_of(n)) or STALE_REFUSES.search(self.log_of(n)))

        # Member 3 restarts holding only the retired secret: its new connections are refused both ways.
        stale = next(n for n in self.nodes if n is not demo.leader_of(self.nodes))
        stale.stop()
        self.write_secrets(stale, OLD)
        seen = {n.id: len(self.log_of(n)) for n in self.nodes}  # only what is logged from here on
        stale.start()
        self.assertTrue(demo.wait_until(lambda: stale.status() is not None, limit=60), "member did not start")
        others = [n for n in self.nodes if n is not stale]
        self.create_order("while-refused")
        self.assertTrue(self.all_applied(self.commit_index(), others))
        self.assertTrue(demo.wait_until(lambda: STALE_REFUSES.search(self.log_of(stale)[seen[stale.id]:]), limit=30),
                        "the member with the retired secret did not log the refusal")
        for n in others:
            self.assertTrue(demo.wait_until(lambda: OTHERS_REFUSED.search(self.log_of(n)[seen[n.id]:]), limit=30),
                            f"member {n.id} did not log the refused connection: {self.log_of(n)[-1500:]}")
        self.assertLess(self.applied(stale), self.commit_index(), "a member with a retired secret caught up")

        stale.stop()
        self.write_secrets(stale, NEW)
        stale.start()
        self.create_order("after")
        self.assertTrue(self.all_applied(self.commit_index()), "the member with the new secret did not catch up")
        code, orders = self.leader().request("GET", "/orders")
        self.assertEqual(code, 200)
        products = {o["product_id"] for o in orders}
        self.assertTrue({"before", "phase-1", "phase-2", "phase-3", "while-refused", "after"} <= products, products)


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main()
