#!/usr/bin/env python3
"""The order service's HTTP API, against the real catga-orders binary (a
single durable node on 127.0.0.1): every route of examples/orders with its
success and error answers. Usage: orders_api_test.py PATH/TO/catga-orders"""
import http.client, os, shutil, sys, tempfile, time, unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import demo  # Node, free_port, free_pair, wait_until

BINARY = None

class OrdersApi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="catga-orders-api-")
        raft = demo.free_pair()
        cls.node = demo.Node(BINARY, 1, raft, demo.free_port(), f"1=127.0.0.1:{raft}", cls.root)
        cls.node.start()
        ok = demo.wait_until(lambda: (cls.node.status() or {}).get("ready"), limit=30)
        if not ok:
            cls.node.stop()
            raise RuntimeError("catga-orders did not become ready")

    @classmethod
    def tearDownClass(cls):
        cls.node.stop()
        shutil.rmtree(cls.root, ignore_errors=True)

    def req(self, method, path, body=None, headers=None):
        return self.node.request(method, path, body, headers)

    def create(self, product="p1", quantity=2, key=None):
        return self.req("POST", "/orders", {"product_id": product, "quantity": quantity},
                        {"Idempotency-Key": key} if key else None)

    def test_create_returns_201_with_the_order(self):
        code, order = self.create("book", 3)
        self.assertEqual(code, 201)
        self.assertEqual(set(order) >= {"id", "product_id", "quantity", "status"}, True)
        self.assertEqual((order["product_id"], order["quantity"], order["status"]), ("book", 3, "created"))

    def test_idempotency_key_returns_the_same_order(self):
        code1, first = self.create("pen", 1, key="same-key")
        code2, second = self.create("pen", 1, key="same-key")
        self.assertEqual((code1, code2), (201, 201))
        self.assertEqual(first["id"], second["id"])
        _, all_orders = self.req("GET", "/orders?product_id=pen")
        self.assertEqual(len([o for o in all_orders if o["id"] == first["id"]]), 1)

    def test_validation_errors_are_400(self):
        code, body = self.create("", 1)
        self.assertEqual(code, 400)
        self.assertEqual(body["error"]["code"], "invalid_argument")
        code, body = self.create("p", 0)
        self.assertEqual(code, 400)

    def test_get_and_404(self):
        _, order = self.create("cup", 1)
        code, got = self.req("GET", f"/orders/{order['id']}")
        self.assertEqual((code, got["id"]), (200, order["id"]))
        code, got = self.req("GET", f"/orders/{order['id']}?consistency=linearizable")
        self.assertEqual(code, 200)
        code, body = self.req("GET", "/orders/999999")
        self.assertEqual(code, 404)
        self.assertEqual(body["error"]["code"], "not_found")
        code, _ = self.req("GET", "/orders/1?consistency=sometimes")
        self.assertEqual(code, 400)

    def test_cancel_twice_is_409(self):
        _, order = self.create("hat", 1)
        code, cancelled = self.req("POST", f"/orders/{order['id']}/cancel")
        self.assertEqual((code, cancelled["status"]), (200, "cancelled"))
        code, body = self.req("POST", f"/orders/{order['id']}/cancel")
        self.assertEqual(code, 409)
        self.assertEqual(body["error"]["code"], "failed_precondition")

    def test_list_filters_and_pages_only_when_asked(self):
        ids = [self.create("lamp", 1)[1]["id"] for _ in range(5)]
        code, lamps = self.req("GET", "/orders?product_id=lamp")
        self.assertEqual(code, 200)
        self.assertEqual([o["id"] for o in lamps], ids)
        _, page = self.req("GET", "/orders?product_id=lamp&limit=2")
        self.assertEqual([o["id"] for o in page], ids[:2])
        _, rest = self.req("GET", f"/orders?product_id=lamp&after={ids[1]}")
        self.assertEqual([o["id"] for o in rest], ids[2:])
        _, everything = self.req("GET", "/orders")
        self.assertTrue(set(ids) <= {o["id"] for o in everything})

    def test_generic_endpoints_health_metrics_and_read_model(self):
        code, order = self.req("POST", "/commands/orders.create.v1", {"product_id": "mug", "quantity": 4})
        self.assertEqual(code, 200)
        code, got = self.req("POST", "/queries/orders.get.v1", {"id": order["id"]})
        self.assertEqual((code, got["product_id"]), (200, "mug"))
        code, _ = self.req("POST", "/commands/orders.nope.v1", {})
        self.assertEqual(code, 404)
        self.assertEqual(self.req("GET", "/health/live")[0], 200)
        self.assertEqual(self.req("GET", "/health/ready")[0], 200)
        code, health = self.req("GET", "/health")
        self.assertEqual((code, health["status"]), (200, "healthy"))
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", self.node.http_port, timeout=10)
        c.request("GET", "/metrics")
        metrics = c.getresponse().read().decode()
        c.close()
        self.assertIn('catga_messages_total{kind="command",message="orders.create.v1",code="ok"}', metrics)
        code, totals = self.req("GET", "/stats/products")
        self.assertEqual(code, 200)
        self.assertGreaterEqual(totals.get("mug", 0), 4)

class ReadModelAcrossRestarts(unittest.TestCase):
    """/stats/products is built on every node from OrderCreated events, and
    from the state whenever a snapshot replaces it (on_restore): a follower
    restarted from its own snapshot counts every order, like the others."""

    extra = ()  # more catga-orders options for every node

    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="catga-orders-read-model-")
        ports = [demo.free_pair() for _ in range(3)]
        cluster = ",".join(f"{i + 1}=127.0.0.1:{p}" for i, p in enumerate(ports))
        self.nodes = [demo.Node(BINARY, i + 1, ports[i], demo.free_port(), cluster, self.root, extra=self.extra)
                      for i in range(3)]
        for n in self.nodes:
            n.start()

    def tearDown(self):
        for n in self.nodes:
            n.stop()
            n.log.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def leader(self):
        n = demo.wait_until(lambda: demo.leader_of(self.nodes), limit=30)
        self.assertIsNotNone(n, "no ready leader")
        return n

    def create(self, node, count, expected):
        for i in range(count):
            product, quantity = f"p{i % 4}", 1 + i % 5
            code, _ = node.request("POST", "/orders", {"product_id": product, "quantity": quantity})
            self.assertEqual(code, 201)
            expected[product] = expected.get(product, 0) + quantity

    def step_down(self, node):
        """Asks `node` to hand leadership on until it is a follower: a transfer
        answers 409 aborted while the members' start-up announcements
        replicate, and 503 once the node is no longer leader (it may have lost
        leadership on its own on a loaded machine)."""
        for _ in range(50):
            code = node.request("POST", "/raft/leadership", {"to": 0})[0]
            if code == 204 or (node.status() or {}).get("role") not in ("leader", None):
                return
            self.assertIn(code, (409, 503))
            time.sleep(0.2)
        self.fail(f"node {node.id} is still the leader")

    def totals(self, node):
        try:
            code, body = node.request("GET", "/stats/products", timeout=2)
            return body if code == 200 else None
        except OSError:
            return None

    def test_stats_equal_on_every_node_after_a_follower_restarts_from_its_snapshot(self):
        expected = {}
        first = self.leader()
        self.create(first, 40, expected)
        code, taken = first.request("POST", "/raft/snapshot")
        self.assertEqual(code, 202)
        self.assertTrue(demo.wait_until(lambda: (first.status() or {}).get("last_snapshot_index", 0) >= taken["index"]))
        # Leadership moves on: the node with the snapshot becomes a follower.
        self.step_down(first)
        first.stop()
        first.start()
        self.assertTrue(demo.wait_until(lambda: (first.status() or {}).get("last_snapshot_index", 0) >= taken["index"]),
                        "the restarted node did not load its snapshot")
        self.create(self.leader(), 5, expected)
        self.expect_totals_everywhere(expected)

    def expect_totals_everywhere(self, expected):
        for n in self.nodes:
            self.assertTrue(demo.wait_until(lambda: self.totals(n) == expected, limit=60),
                            f"node {n.id}: /stats/products is {self.totals(n)}, expected {expected}; "
                            f"alive {n.alive()}; its log ends:\n{n.log_tail()}")

    def metric(self, node, name):
        c = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=5)
        try:
            c.request("GET", "/metrics")
            text = c.getresponse().read().decode()
        finally:
            c.close()
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        self.fail(f"node {node.id}: no {name} in /metrics")

class ReadModelAcrossInstalls(ReadModelAcrossRestarts):
    """The same read model on a follower that was down while the leader
    compacted its log: it catches up by a snapshot the leader sends
    (InstallSnapshot), which replaces its state without replaying the events
    of the entries it covers, and on_restore rebuilds the counts from it.
    `--snapshot-trailing-bytes 1` keeps next to no log behind a snapshot."""

    extra = ("--snapshot-trailing-bytes", "1")

    def test_stats_equal_on_every_node_after_a_follower_catches_up_by_an_installed_snapshot(self):
        expected = {}
        leader = self.leader()
        self.create(leader, 10, expected)
        follower = next(n for n in self.nodes if n is not leader)
        self.expect_totals_everywhere(expected)  # the follower counted the first orders itself
        follower.stop()
        leader = self.leader()
        self.create(leader, 40, expected)
        code, taken = leader.request("POST", "/raft/snapshot")
        self.assertEqual(code, 202)
        self.assertTrue(demo.wait_until(lambda: (leader.status() or {}).get("last_snapshot_index", 0) >= taken["index"]))
        sent_before = self.metric(leader, "catga_snapshots_sent_total")
        follower.start()
        self.assertTrue(demo.wait_until(lambda: (follower.status() or {}).get("last_snapshot_index", 0) >= taken["index"],
                                        limit=60),
                        f"node {follower.id} did not receive the leader's snapshot; its log ends:\n{follower.log_tail()}")
        self.assertGreater(self.metric(leader, "catga_snapshots_sent_total"), sent_before,
                           "the follower caught up without an InstallSnapshot: the test proves nothing")
        self.create(self.leader(), 5, expected)
        self.expect_totals_everywhere(expected)

if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
