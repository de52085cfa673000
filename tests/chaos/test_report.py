#!/usr/bin/env python3
"""Unit tests of the chaos schedule (replays) and of the per-fault figures."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import fault_figures  # noqa: E402
from schedule import CLASSIC, make_schedule  # noqa: E402


def op(invoke, complete, outcome="ok", status=200):
    return {"invoke": invoke, "complete": complete, "outcome": outcome, "status": status}


class ScheduleTest(unittest.TestCase):
    def test_classic_replays_the_schedule_seed_9191_had_before_the_new_kinds(self):
        # The first faults of the failing run of issue 13 item 9 (printed by the
        # driver of commit d7c9d79).
        s = make_schedule(9191, 240, 5, 300, "proxy", long_kills=True, long_pauses=True, classic=True)
        self.assertEqual(s[:4], [
            {"at": 3.0, "kind": "kill_leader", "duration": 2.8, "pick": 420922422},
            {"at": 8.78, "kind": "kill_long", "duration": 29.94, "pick": 258207394},
            {"at": 40.3, "kind": "pause_long_leader", "duration": 13.91, "pick": 612117281},
            {"at": 56.42, "kind": "drop_connections", "duration": 0.0, "pick": 476577384},
        ])
        self.assertTrue(all(f["kind"] in CLASSIC + ["split_majority", "kill_two", "kill_long", "pause_long_leader",
                                                    "pause_long_follower"] for f in s))

    def test_every_kind_appears_in_a_short_run_and_options_add_theirs(self):
        kinds = {f["kind"] for f in make_schedule(5, 200, 3, 300, clock_jumps=True, disk_faults=True)}
        for k in ("membership", "rolling_restart", "blackhole_link", "clock_ahead", "clock_behind", "clock_ahead_live",
                  "clock_behind_live", "disk_shutdown",
                  "disk_full"):
            self.assertIn(k, kinds)
        plain = {f["kind"] for f in make_schedule(5, 200, 3, 300)}
        self.assertFalse(plain & {"clock_ahead", "clock_behind", "disk_shutdown", "disk_full"})
        direct = {f["kind"] for f in make_schedule(5, 200, 3, 300, network="direct")}
        self.assertFalse(direct & {"blackhole_link", "partition_leader", "drop_connections"})


class FaultFiguresTest(unittest.TestCase):
    def test_counts_ops_errors_and_the_longest_time_without_a_success(self):
        ops = [op(0.0, 0.1), op(1.0, 1.2),
               op(1.5, 4.0, "unknown", None),        # during the fault
               op(2.0, 2.1, "failed", 503),          # during the fault
               op(2.5, 2.6, "failed", 404),          # an outcome, not an error
               op(3.0, 6.5),                         # the first success after the fault
               op(7.0, 7.1)]
        injected = [{"kind": "kill_leader", "start": 1.4, "end": 3.5},
                    {"kind": "clock_ahead", "start": 8.0, "end": 9.0, "skipped": True}]
        f = fault_figures(injected, ops)
        k = f["kill_leader"]
        self.assertEqual((k["count"], k["ops"], k["errors"], k["unknown"]), (1, 4, 2, 1))
        self.assertAlmostEqual(k["max_unavailable_s"], 6.5 - 1.4, places=2)
        self.assertEqual((f["clock_ahead"]["count"], f["clock_ahead"]["skipped"], f["clock_ahead"]["ops"]), (1, 1, 0))

    def test_no_success_after_the_fault_counts_until_the_last_operation(self):
        ops = [op(0.0, 0.5), op(1.0, 9.0, "unknown", None)]
        f = fault_figures([{"kind": "restart_cluster", "start": 1.0, "end": 2.0}], ops)
        self.assertAlmostEqual(f["restart_cluster"]["max_unavailable_s"], 8.0, places=2)


if __name__ == "__main__":
    unittest.main()
