"""Unit tests of the chaos checker: hand-written histories. Linearizable ones
must pass; lost, duplicated, failed-but-applied, divergent, stale and
read-your-writes-violating ones must be caught (a checker that cannot fail
proves nothing). Run: python3 -m unittest tests/chaos/test_checker.py"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checker  # noqa: E402
from checker import INF, linearizable  # noqa: E402


def create(key, t0, t1, outcome="ok", oid=None, client=1, status=None, quantity=1, index=0):
    if status is None:
        status = {"ok": 201, "failed": 503, "unknown": 504}[outcome]
    return {"type": "create", "client": client, "node": 1, "key": key, "quantity": quantity,
            "id": oid if outcome == "ok" else None, "outcome": outcome, "status": status,
            "invoke": t0, "complete": t1, "index": index}


def cancel(oid, t0, t1, result, client=1):
    outcome, status = {"cancelled": ("ok", 200), "already": ("failed", 409), "missing": ("failed", 404),
                       "unavailable": ("failed", 503), "unknown": ("unknown", 504)}[result]
    return {"type": "cancel", "client": client, "node": 1, "id": oid, "outcome": outcome, "status": status,
            "value": "cancelled" if outcome == "ok" else None, "invoke": t0, "complete": t1, "index": 0}


def read(oid, t0, t1, value, consistency="linearizable", client=2, outcome=None):
    if outcome is None:
        outcome = "failed" if value == "absent" else "ok"
    status = {"ok": 200, "failed": 404, "unknown": 504}[outcome]
    return {"type": "read", "client": client, "node": 1, "id": oid, "consistency": consistency,
            "outcome": outcome, "status": status, "value": None if value == "absent" else value,
            "invoke": t0, "complete": t1}


def order(oid, key, status="created", quantity=1):
    return {"id": oid, "product_id": key, "quantity": quantity, "status": status, "created_at_ms": 0}


def finals(*orders, nodes=(1, 2, 3), t=100.0):
    return [{"node": n, "invoke": t + n, "complete": t + n + 0.5, "orders": list(orders)} for n in nodes]


def kinds(result):
    return sorted({a["kind"] for a in result["anomalies"]})


class LinearizableSearch(unittest.TestCase):
    def test_sequential(self):
        ops = [("create", None, 0, 1), ("read", "created", 2, 3), ("cancel", "cancelled", 4, 5),
               ("read", "cancelled", 6, 7), ("cancel", "already", 8, 9)]
        self.assertTrue(linearizable(ops)[0])

    def test_concurrent_read_may_see_either(self):
        self.assertTrue(linearizable([("create", None, 0, 10), ("read", "absent", 1, 2), ("read", "created", 3, 4)])[0])
        self.assertTrue(linearizable([("create", None, 0, 10), ("read", "created", 1, 2)])[0])

    def test_stale_read_after_acknowledged_create(self):
        ok, prefix = linearizable([("create", None, 0, 1), ("read", "absent", 2, 3)])
        self.assertFalse(ok)
        self.assertIsNotNone(prefix)

    def test_reads_going_back_in_time(self):
        # A cancel concurrent with both reads: a read saw it, a later read did not.
        ops = [("create", None, 0, 1), ("cancel", "cancelled", 2, 20),
               ("read", "cancelled", 3, 4), ("read", "created", 5, 6)]
        self.assertFalse(linearizable(ops)[0])
        # Overlapping reads may be ordered either way.
        ops = [("create", None, 0, 1), ("cancel", "cancelled", 2, 20),
               ("read", "cancelled", 3, 6), ("read", "created", 4, 5)]
        self.assertTrue(linearizable(ops)[0])

    def test_unknown_may_or_may_not_have_happened(self):
        self.assertTrue(linearizable([("create", None, 0, 1), ("cancel", None, 2, INF), ("read", "cancelled", 3, 4)])[0])
        self.assertTrue(linearizable([("create", None, 0, 1), ("cancel", None, 2, INF), ("read", "created", 3, 4)])[0])
        # ... but not before it was invoked.
        self.assertFalse(linearizable([("create", None, 0, 1), ("read", "cancelled", 1.5, 1.8), ("cancel", None, 2, INF)])[0])

    def test_double_cancel_success_is_not_linearizable(self):
        ops = [("create", None, 0, 1), ("cancel", "cancelled", 2, 3), ("cancel", "cancelled", 4, 5)]
        self.assertFalse(linearizable(ops)[0])
        ops = [("create", None, 0, 1), ("cancel", "cancelled", 2, 5), ("cancel", "already", 3, 4)]
        self.assertTrue(linearizable(ops)[0])

    def test_missing_then_found(self):
        self.assertTrue(linearizable([("cancel", "missing", 0, 1), ("create", None, 2, 3)])[0])
        self.assertFalse(linearizable([("create", None, 0, 1), ("cancel", "missing", 2, 3)])[0])

    def test_budget_reports_inconclusive(self):
        ops = [("read", "absent", 0, 100) for _ in range(12)] + [("create", None, 0, 100)] + \
              [("read", "created", 0, 100) for _ in range(12)]
        self.assertEqual(linearizable(ops, budget=10)[0], None)
        self.assertTrue(linearizable(ops)[0])

    def test_many_concurrent_operations(self):
        ops = [("create", None, 0, 50)]
        ops += [("read", "absent", i, i + 60) for i in range(10)]
        ops += [("read", "created", i, i + 60) for i in range(10)]
        ops += [("cancel", None, 5, INF), ("cancel", "already", 70, 71), ("read", "cancelled", 72, 73)]
        self.assertTrue(linearizable(ops)[0])
        ops.append(("read", "created", 74, 75))
        self.assertFalse(linearizable(ops)[0])


class HistoryCheck(unittest.TestCase):
    def test_clean_history_passes(self):
        h = [create("k1", 0, 1, oid=1), create("k2", 0.5, 2, oid=2, client=2),
             read(1, 1.5, 1.6, "created"), cancel(1, 3, 4, "cancelled"), read(1, 5, 6, "cancelled"),
             cancel(1, 7, 8, "already", client=3), read(2, 2.5, 3, "created", consistency="read_your_writes", client=2),
             create("k3", 9, 10, outcome="unknown"), create("k3", 11, 12, oid=3),  # retry of an unknown outcome
             create("k4", 9, 10, outcome="unknown"),  # never applied: fine
             create("k5", 9, 10, outcome="failed"), cancel(2, 13, 14, "unavailable")]
        r = checker.check(h, finals(order(1, "k1", "cancelled"), order(2, "k2"), order(3, "k3")))
        self.assertEqual(r["anomalies"], [])
        self.assertEqual(r["stats"]["orders_checked"], 3)

    def test_unknown_create_that_applied_passes(self):
        h = [create("k1", 0, 1, outcome="unknown")]
        self.assertEqual(checker.check(h, finals(order(7, "k1")))["anomalies"], [])
        self.assertEqual(checker.check(h, finals())["anomalies"], [])

    def test_lost_acknowledged_create(self):
        h = [create("k1", 0, 1, oid=1), create("k2", 0, 1, oid=2)]
        r = checker.check(h, finals(order(1, "k1")))
        self.assertIn("lost", kinds(r))

    def test_lost_on_one_node_is_divergence_and_loss(self):
        h = [create("k1", 0, 1, oid=1)]
        f = finals(order(1, "k1"))
        f[2]["orders"] = []
        self.assertEqual(kinds(checker.check(h, f)), ["divergence", "lost", "nonlinearizable"])

    def test_duplicate_application_of_one_key(self):
        h = [create("k1", 0, 1, outcome="unknown"), create("k1", 2, 3, oid=2)]
        r = checker.check(h, finals(order(1, "k1"), order(2, "k1")))
        self.assertIn("duplicate", kinds(r))

    def test_same_key_acknowledged_with_two_ids(self):
        h = [create("k1", 0, 1, oid=1), create("k1", 2, 3, oid=2)]
        self.assertIn("duplicate", kinds(checker.check(h, finals(order(1, "k1")))))

    def test_failed_create_that_applied(self):
        h = [create("k1", 0, 1, outcome="failed"), create("k1", 2, 3, outcome="failed", status=None)]
        r = checker.check(h, finals(order(1, "k1")))
        self.assertIn("failed-applied", kinds(r))

    def test_failed_cancel_that_applied(self):
        h = [create("k1", 0, 1, oid=1), cancel(1, 2, 3, "unavailable")]
        r = checker.check(h, finals(order(1, "k1", "cancelled")))
        self.assertIn("failed-applied", kinds(r))
        self.assertIn("nonlinearizable", kinds(r))

    def test_cancel_refused_by_a_stopped_node_says_nothing_about_the_order(self):
        # 503 "node stopped: …" (the node's disk failed): nothing happened there.
        stopped = dict(cancel(1, 2, 3, "unavailable"), error="failed_precondition: node stopped: a write failed")
        h = [create("k1", 0, 1, oid=1), stopped, read(1, 4, 5, "created")]
        self.assertEqual(checker.check(h, finals(order(1, "k1")))["anomalies"], [])
        # Answered 409 (the status before 2026-11-30): still no verdict on the
        # order, but a client reads 409 as one, so the status is an anomaly.
        stopped = dict(cancel(1, 2, 3, "already"), error="failed_precondition: node stopped: a write failed")
        h = [create("k1", 0, 1, oid=1), stopped, read(1, 4, 5, "created")]
        self.assertEqual(kinds(checker.check(h, finals(order(1, "k1")))), ["bad-status"])
        # A real "already cancelled" 409 before the cancel is a violation.
        h = [create("k1", 0, 1, oid=1), cancel(1, 2, 3, "already"), read(1, 4, 5, "created")]
        self.assertIn("nonlinearizable", kinds(checker.check(h, finals(order(1, "k1")))))

    def test_acknowledged_cancel_lost(self):
        h = [create("k1", 0, 1, oid=1), cancel(1, 2, 3, "cancelled")]
        self.assertEqual(kinds(checker.check(h, finals(order(1, "k1")))), ["nonlinearizable"])

    def test_divergent_content(self):
        h = [create("k1", 0, 1, oid=1), cancel(1, 2, 3, "unknown")]
        f = finals(order(1, "k1", "cancelled"))
        f[1]["orders"] = [order(1, "k1", "created")]
        self.assertIn("divergence", kinds(checker.check(h, f)))

    def test_stale_linearizable_read(self):
        h = [create("k1", 0, 1, oid=1), read(1, 2, 3, "absent")]
        r = checker.check(h, finals(order(1, "k1")))
        self.assertEqual(kinds(r), ["nonlinearizable"])
        self.assertTrue(r["anomalies"][0]["operations"])

    def test_stale_local_read_is_allowed(self):
        h = [create("k1", 0, 1, oid=1), read(1, 2, 3, "absent", consistency="local")]
        self.assertEqual(checker.check(h, finals(order(1, "k1")))["anomalies"], [])

    def test_read_your_writes_violation(self):
        h = [create("k1", 0, 1, oid=1, client=5), read(1, 2, 3, "absent", consistency="read_your_writes", client=5)]
        self.assertEqual(kinds(checker.check(h, finals(order(1, "k1")))), ["read-your-writes"])
        # Another client's read_your_writes read promises nothing about client 5's writes.
        h[1]["client"] = 6
        self.assertEqual(checker.check(h, finals(order(1, "k1")))["anomalies"], [])

    def test_read_your_own_cancel(self):
        h = [create("k1", 0, 1, oid=1, client=5), cancel(1, 2, 3, "cancelled", client=5),
             read(1, 4, 5, "created", consistency="read_your_writes", client=5)]
        self.assertEqual(kinds(checker.check(h, finals(order(1, "k1", "cancelled")))), ["read-your-writes"])

    def test_phantom_read(self):
        h = [read(9, 0, 1, "created", consistency="local"), create("k9", 2, 3, oid=9)]
        self.assertIn("phantom-read", kinds(checker.check(h, finals(order(9, "k9")))))

    def test_phantom_order(self):
        self.assertIn("phantom", kinds(checker.check([], finals(order(1, "nobody")))))

    def test_corrupt_content(self):
        h = [create("k1", 0, 1, oid=1, quantity=3)]
        self.assertIn("corrupt", kinds(checker.check(h, finals(order(1, "k1", quantity=4)))))


if __name__ == "__main__":
    unittest.main()
