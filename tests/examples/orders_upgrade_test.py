#!/usr/bin/env python3
"""A rolling upgrade with the real binaries on 127.0.0.1 (docs/operations.md,
"Rolling upgrades"): three catga-orders-v1 processes (the service's previous
release, without CancelOrder) are replaced one at a time, each on its own data
directory, by catga-orders, while orders are created through every node.

- until the last member runs the new build, a cancel sent through an upgraded
  node is refused with 409 failed_precondition naming exactly the members still
  on v1 — and nothing is applied;
- once every member runs it, the cancel is accepted;
- no node stops itself, every acknowledged order is on every node once, and
  the three nodes end with the same orders.

Usage: orders_upgrade_test.py PATH/TO/catga-orders-v1 PATH/TO/catga-orders"""
import os, re, shutil, sys, tempfile, threading, time, unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import demo  # Node, free_pair, free_port, wait_until, leader_of

V1 = V2 = None


class Traffic(threading.Thread):
    """Creates orders through every node in turn until stopped; keeps the ids
    of the acknowledged ones (an idempotency key per order, retried on any
    failure, so a restart in the middle neither loses nor doubles one)."""

    def __init__(self, nodes):
        super().__init__(daemon=True)
        self.nodes, self.stop, self.acked, self.failures = nodes, threading.Event(), {}, 0

    def run(self):
        i = 0
        while not self.stop.is_set() and i < 5000:
            key = f"upgrade-{i}"
            for attempt in range(200):
                node = self.nodes[(i + attempt) % len(self.nodes)]
                try:
                    code, body = node.request("POST", "/orders", {"product_id": f"p{i % 7}", "quantity": 1},
                                              {"Idempotency-Key": key}, timeout=5)
                except OSError:
                    code, body = None, None
                if code == 201:
                    self.acked[key] = body["id"]
                    break
                self.failures += 1
                if self.stop.wait(0.05):
                    return
            i += 1


class RollingUpgrade(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="catga-orders-upgrade-")
        self.nodes = []

    def tearDown(self):
        for n in self.nodes:
            n.kill()
            n.log.close()
        if getattr(self, "_outcome", None) and not all(e is None for _, e in getattr(self._outcome, "errors", [])):
            return  # keep the logs of a failure
        shutil.rmtree(self.root, ignore_errors=True)

    def announced(self, nid, handles_cancel):
        """Whether every node's status shows member nid's announcement with (or without) CancelOrder."""
        for n in self.nodes:
            s = n.status()
            if not s:
                return False
            mine = [a for a in s.get("announcements", []) if a.get("id") == nid]
            if not mine:
                return False
            names = str(mine[0])
            if ("orders.cancel.v1" in names) != handles_cancel:
                return False
        return True

    def test_v1_to_v2_under_traffic(self):
        for i in range(3):
            self.nodes.append(demo.Node(V1, i + 1, demo.free_pair(), demo.free_port(), "", self.root))
        cluster = ",".join(f"{n.id}=127.0.0.1:{n.raft_port}" for n in self.nodes)
        for n in self.nodes:
            n.cluster = cluster
            n.start()
        self.assertIsNotNone(demo.wait_until(lambda: demo.leader_of(self.nodes), limit=60), "no leader")
        for n in self.nodes:
            self.assertTrue(demo.wait_until(lambda n=n: self.announced(n.id, False), limit=30),
                            f"member {n.id} never announced")
        code, order = self.nodes[0].request("POST", "/orders", {"product_id": "to-cancel", "quantity": 2},
                                            {"Idempotency-Key": "to-cancel"})
        self.assertEqual(code, 201, order)
        code, _ = self.nodes[0].request("POST", f"/orders/{order['id']}/cancel")
        self.assertEqual(code, 404, "v1 has no cancel route")

        traffic = Traffic(self.nodes)
        traffic.start()
        try:
            for step, n in enumerate(self.nodes):
                n.stop()
                n.binary = V2
                n.start()
                self.assertTrue(demo.wait_until(lambda n=n: self.announced(n.id, True), limit=60),
                                f"member {n.id} never announced the new build")
                on_v1 = [m.id for m in self.nodes[step + 1:]]
                if on_v1:
                    code, body = n.request("POST", f"/orders/{order['id']}/cancel")
                    self.assertEqual(code, 409, body)
                    self.assertEqual(body["error"]["code"], "failed_precondition", body)
                    named = sorted(int(x) for x in re.findall(r"\d+", body["error"]["message"].split(" by member")[1]
                                                              .split("(")[0]))
                    self.assertEqual(named, on_v1, body)
                time.sleep(0.5)  # traffic through the upgraded node
            code, body = self.nodes[0].request("POST", f"/orders/{order['id']}/cancel")
            self.assertEqual(code, 200, body)
        finally:
            traffic.stop.set()
            traffic.join(timeout=60)
        self.assertGreater(len(traffic.acked), 0)

        leader = demo.wait_until(lambda: demo.leader_of(self.nodes), limit=30)
        self.assertIsNotNone(leader)
        for n in self.nodes:
            self.assertTrue(n.alive(), f"node {n.id} exited")
            self.assertFalse((n.status() or {}).get("failure"), f"node {n.id} stopped itself")
        ids = sorted(traffic.acked.values())
        self.assertEqual(len(ids), len(set(ids)), "an order acknowledged twice under two ids")
        views = []
        for n in self.nodes:
            code, page = n.request("GET", "/orders?consistency=linearizable", timeout=30)
            self.assertEqual(code, 200, page)
            orders = page["orders"] if isinstance(page, dict) else page
            views.append(sorted((o["id"], o.get("status"), o.get("product_id")) for o in orders))
            held = {o["id"] for o in orders}
            self.assertFalse(set(ids) - held, f"node {n.id} lacks acknowledged orders")
        self.assertEqual(views[0], views[1])
        self.assertEqual(views[0], views[2])
        cancelled = [v for v in views[0] if v[0] == order["id"]]
        self.assertEqual(len(cancelled), 1)
        print(f"upgrade: {len(ids)} orders acknowledged during the upgrade, {traffic.failures} failed attempts "
              f"retried, {len(views[0])} orders on every node")


if __name__ == "__main__":
    V1, V2 = sys.argv[1], sys.argv[2]
    unittest.main(argv=sys.argv[:1], verbosity=2)
