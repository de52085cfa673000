"""The end of a chaos run: the checker's self-test, the summary of the client
history, and the per-fault figures (how many of each kind were injected, the
client operations started during them, their errors, and the longest time
without a successful answer from a fault's start until the first success
after it ended).
"""
from __future__ import annotations

import bisect
import copy

import checker
from client import LOGICAL_DEADLINE


def self_test(history, finals):
    """Mutates the real history in ways the checker must catch (a lost order, a
    duplicate, a stale linearizable read, a failed create that applied) and
    returns the mutations it missed: a checker that cannot fail proves nothing."""
    missed = []
    if not finals or not finals[0]["orders"]:
        return ["no final state to mutate"]
    ok_creates = [op for op in history if op["type"] == "create" and op["outcome"] == "ok"]
    attempts = {}
    for op in history:
        if op["type"] == "create":
            attempts[op["key"]] = attempts.get(op["key"], 0) + 1

    def expect(kind, h, f, what):
        if not any(a["kind"] == kind for a in checker.check(h, f)["anomalies"]):
            missed.append(f"{what}: no {kind} anomaly")

    f = copy.deepcopy(finals)
    f[-1]["orders"] = f[-1]["orders"][:-1]
    expect("lost", history, f, "an acknowledged order removed from one node")
    f = copy.deepcopy(finals)
    dup = dict(f[0]["orders"][0])
    dup["id"] = max(o["id"] for o in f[0]["orders"]) + 1
    for x in f:
        x["orders"].append(dup)
    expect("duplicate", history, f, "an order applied twice on every node")
    created_done = {}
    for op in ok_creates:
        created_done[op["id"]] = min(created_done.get(op["id"], 1e300), op["complete"])
    for i, op in enumerate(history):
        if (op["type"] == "read" and op.get("consistency") == "linearizable" and op["outcome"] == "ok"
                and created_done.get(op["id"], 1e300) < op["invoke"]):
            h = copy.deepcopy(history)
            h[i].update(outcome="failed", status=404, value=None)
            expect("nonlinearizable", h, finals, "a linearizable read made stale")
            break
    else:
        missed.append("no linearizable read to make stale")
    for i, op in enumerate(history):
        if op["type"] == "create" and op["outcome"] == "ok" and attempts[op["key"]] == 1:
            h = copy.deepcopy(history)
            h[i].update(outcome="failed", status=503, id=None)
            expect("failed-applied", h, finals, "an applied create reported as 503")
            break
    return missed


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100.0 * len(values)))]


def summarize(ops):
    by = {}
    for op in ops:
        k = (op["type"], op["outcome"])
        by[k] = by.get(k, 0) + 1
    answered = [op for op in ops if op["outcome"] == "ok" or op.get("status") in (404, 409)]
    # Logical operations: one client action with its retries.
    lops = {}
    for op in ops:
        k = (op["client"], op["lop"])
        lops.setdefault(k, []).append(op)
    good = 0
    for attempts in lops.values():
        start = min(a["invoke"] for a in attempts)
        if any((a["outcome"] == "ok" or a.get("status") in (404, 409)) and a["complete"] - start <= LOGICAL_DEADLINE
               for a in attempts):
            good += 1
    lat = {}
    for kind in ("create", "cancel", "read"):
        xs = [(op["complete"] - op["invoke"]) * 1000 for op in ops if op["type"] == kind and op["outcome"] == "ok"]
        lat[kind] = {"p50_ms": percentile(xs, 50), "p99_ms": percentile(xs, 99), "max_ms": max(xs) if xs else None}
    return {
        "requests": len(ops),
        "by_type_outcome": {f"{t}/{o}": n for (t, o), n in sorted(by.items())},
        "request_availability_pct": 100.0 * len(answered) / max(len(ops), 1),
        "operations": len(lops),
        "operation_availability_pct": 100.0 * good / max(len(lops), 1),
        "latency": lat,
    }


def fault_figures(injected, ops):
    """Per fault kind: count, ops (requests invoked while such a fault ran),
    errors (their failed or unknown outcomes, 404/409 answers excluded),
    max_unavailable_s (the longest time without a successful answer from a
    fault's start until the first success after its end), and how many were
    skipped (a fault that could not be injected here)."""
    ok_times = sorted(op["complete"] for op in ops if op["outcome"] == "ok")
    figures = {}
    for f in injected:
        fig = figures.setdefault(f["kind"], {"count": 0, "skipped": 0, "ops": 0, "errors": 0, "unknown": 0,
                                             "max_unavailable_s": 0.0})
        fig["count"] += 1
        if f.get("skipped"):
            fig["skipped"] += 1
            continue
        start, end = f["start"], f["end"]
        during = [op for op in ops if start <= op["invoke"] <= end]
        fig["ops"] += len(during)
        bad = [op for op in during if op["outcome"] != "ok" and op.get("status") not in (404, 409)]
        fig["errors"] += len(bad)
        fig["unknown"] += sum(1 for op in bad if op["outcome"] == "unknown")
        lo = bisect.bisect_right(ok_times, start)
        hi = bisect.bisect_right(ok_times, end)
        points = [start] + ok_times[lo:hi] + ok_times[hi:hi + 1]
        if hi >= len(ok_times):  # no success after the end: unavailable until the last operation
            points.append(max([end] + [op["complete"] for op in ops]))
        gap = max((b - a for a, b in zip(points, points[1:])), default=0.0)
        fig["max_unavailable_s"] = round(max(fig["max_unavailable_s"], gap), 2)
    return figures


def format_fault_figures(figures):
    lines = [f"    {'kind':<20} {'count':>5} {'requests':>8} {'errors':>7} {'unknown':>7} {'max unavail s':>13}"]
    for kind, f in sorted(figures.items()):
        skipped = f"  ({f['skipped']} skipped)" if f["skipped"] else ""
        lines.append(f"    {kind:<20} {f['count']:>5} {f['ops']:>8} {f['errors']:>7} {f['unknown']:>7} "
                     f"{f['max_unavailable_s']:>13.2f}{skipped}")
    return "\n".join(lines)
