#!/usr/bin/env python3
"""catga-orders --trace stdout across 3 processes: an order posted with a W3C
traceparent to a follower is one trace — the follower prints its send and
forward spans, the leader its apply span, all under the caller's trace id —
and --trace off prints no span. Usage: orders_trace_test.py PATH/TO/catga-orders"""
import os, shutil, sys, tempfile, unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import demo  # Node, free_pair, free_port, wait_until, leader_of

BINARY = None
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def spans(path):
    """(name, trace id) of every span the ostream exporter printed into `path`."""
    out, name = [], None
    with open(path) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip() == "name": name = value.strip()
            elif key.strip() == "trace_id" and name: out.append((name, value.strip())); name = None
    return out


class Trace(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="catga-orders-trace-")
        self.nodes = []

    def tearDown(self):
        for n in self.nodes: n.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def cluster(self, trace):
        ports = [demo.free_pair() for _ in range(3)]
        members = ",".join(f"{i + 1}=127.0.0.1:{p}" for i, p in enumerate(ports))
        root = os.path.join(self.root, trace)
        os.makedirs(root)
        self.nodes = [demo.Node(BINARY, i + 1, ports[i], demo.free_port(), members, root, ["--trace", trace])
                      for i in range(3)]
        for n in self.nodes:
            n.stdout = open(os.path.join(root, f"node{n.id}.stdout"), "wb")
            n.start()
        leader = demo.wait_until(lambda: demo.leader_of(self.nodes), limit=60)
        self.assertIsNotNone(leader, "no leader; the logs end:\n" + "".join(
            f"--- node {n.id} (alive {n.alive()}, raft {n.raft_port}, http {n.http_port}):\n{n.log_tail()}"
            for n in self.nodes))
        follower = next(n for n in self.nodes if n is not leader)
        answers = []
        def post():  # until the follower serves HTTP and knows the leader (503 before)
            try:
                answers.append(follower.request("POST", "/orders", {"product_id": "p1", "quantity": 2},
                                                headers={"traceparent": TRACEPARENT}))
            except OSError as e:
                answers.append((None, str(e)))
            return answers[-1][0] == 201
        self.assertTrue(demo.wait_until(post, limit=30, step=0.2), f"POST /orders on the follower: {answers[-3:]}")
        for n in self.nodes:
            n.stop()  # SIGTERM: the batch processor exports what it holds
            n.stdout.close()
        return leader, follower, {n.id: spans(n.stdout.name) for n in self.nodes}

    def test_one_trace_across_processes(self):
        leader, follower, printed = self.cluster("stdout")
        self.assertIn(("send orders.create.v1", TRACE_ID), printed[follower.id])
        self.assertIn(("forward orders.create.v1", TRACE_ID), printed[follower.id])
        self.assertIn(("apply orders.create.v1", TRACE_ID), printed[leader.id])

    def test_off_prints_nothing(self):
        _, _, printed = self.cluster("off")
        self.assertEqual(printed, {1: [], 2: [], 3: []})


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
