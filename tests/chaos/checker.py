"""History checker of the chaos test (Python 3 standard library only).

A history is a list of operations (dicts) recorded by the chaos driver's
clients, plus the final order lists read from every node after healing. The
checker answers: was anything acknowledged lost, applied twice, did anything
reported as failed take effect, do the nodes agree, are linearizable reads
linearizable (Wing & Gong search with Lowe's memoisation, per order — the
order model is P-compositional, each operation touches one order) and does
read-your-writes hold per client.

Operation fields (see chaos.py for how they are recorded):
  type        'create' | 'cancel' | 'read'
  client      client number
  key         create: the Idempotency-Key; the workload also uses it as the
              order's product_id, so every order names the key that made it
  quantity    create: the quantity sent
  id          cancel/read: the order id; create with outcome ok: the id returned
  outcome     'ok' (2xx), 'failed' (definite: 4xx, 503, connection refused),
              'unknown' (504, timeout, connection reset)
  status      HTTP status (None without a response)
  value       read ok: 'created' | 'cancelled'; read 404: 'absent'
  consistency read: 'local' | 'read_your_writes' | 'linearizable'
  index       X-Catga-Index of a command's response (0 if none)
  invoke, complete   time.monotonic() at invocation and at completion

Final states: a list of {'node', 'invoke', 'complete', 'orders': [order...]}.
"""
from __future__ import annotations

import math

INF = math.inf

# Per-order model states.
ABSENT, CREATED, CANCELLED = 0, 1, 2
STATE_NAMES = {ABSENT: "absent", CREATED: "created", CANCELLED: "cancelled"}
VALUE_STATE = {"absent": ABSENT, "created": CREATED, "cancelled": CANCELLED}


class Anomaly(dict):
    """{'kind': ..., 'message': ..., plus details}."""

    def __str__(self):
        return f"[{self['kind']}] {self['message']}"


def anomaly(kind, message, **details):
    a = Anomaly(kind=kind, message=message)
    a.update(details)
    return a


# --------------------------------------------------------------------------
# Per-order operations for the linearizability search.
#
# An operation is (op_kind, arg, invoke, complete); complete is INF when the
# outcome is unknown (it may take effect at any point after its invocation,
# or never — linearized after everything else it changes nothing observed).
#   ('create', None)          create-if-absent (repeats of an Idempotency-Key
#                             return the first result): always valid
#   ('cancel', 'cancelled')   200: requires created -> cancelled
#   ('cancel', 'already')     409: requires cancelled
#   ('cancel', 'missing')     404: requires absent
#   ('cancel', None)          unknown: created -> cancelled, otherwise nothing
#   ('read', 'absent'|'created'|'cancelled')   requires that state


def step(state, op_kind, arg):
    """Returns the next state, or None when the operation cannot happen in `state`."""
    if op_kind == "create":
        return CREATED if state == ABSENT else state
    if op_kind == "cancel":
        if arg is None:
            return CANCELLED if state == CREATED else state
        if arg == "cancelled":
            return CANCELLED if state == CREATED else None
        if arg == "already":
            return state if state == CANCELLED else None
        if arg == "missing":
            return state if state == ABSENT else None
        raise ValueError(f"cancel result {arg!r}")
    if op_kind == "read":
        return state if VALUE_STATE[arg] == state else None
    raise ValueError(f"operation {op_kind!r}")


class _Entry:
    __slots__ = ("is_call", "op", "time", "match", "prev", "next", "index")

    def __init__(self, is_call, op, time, index):
        self.is_call, self.op, self.time, self.index = is_call, op, time, index
        self.match = self.prev = self.next = None


def linearizable(ops, initial=ABSENT, budget=2_000_000):
    """Wing & Gong / Lowe search (as in Porcupine) over one order's operations.

    ops: list of (op_kind, arg, invoke, complete). Returns (True, None) when a
    linearization exists, (False, longest_prefix) when none does, (None, None)
    when the search budget ran out (inconclusive)."""
    if not ops:
        return True, None
    events = []
    for i, (kind, arg, invoke, complete) in enumerate(ops):
        if complete < invoke:
            raise ValueError(f"operation {i} completes before it is invoked")
        events.append((invoke, 0, i))
        events.append((complete, 1, i))
    # Calls before returns at equal times: operations touching at an instant
    # count as concurrent (the permissive choice: no false alarms from clock
    # granularity).
    events.sort()
    head = _Entry(False, None, -INF, -1)
    calls = {}
    prev = head
    for time, is_return, i in events:
        e = _Entry(not is_return, ops[i], time, i)
        if is_return:
            calls[i].match = e
        else:
            calls[i] = e
        prev.next, e.prev = e, prev
        prev = e

    def lift(call):
        call.prev.next = call.next
        if call.next is not None:
            call.next.prev = call.prev
        ret = call.match
        ret.prev.next = ret.next
        if ret.next is not None:
            ret.next.prev = ret.prev

    def unlift(call):
        ret = call.match
        ret.prev.next = ret
        if ret.next is not None:
            ret.next.prev = ret
        call.prev.next = call
        if call.next is not None:
            call.next.prev = call

    state = initial
    linearized = 0
    cache = set()
    stack = []  # (call entry, state before it)
    best = []
    steps = 0
    entry = head.next
    while head.next is not None:
        steps += 1
        if steps > budget:
            return None, None
        if entry.is_call:
            kind, arg = entry.op[0], entry.op[1]
            nxt = step(state, kind, arg)
            if nxt is not None:
                key = (linearized | (1 << entry.index), nxt)
                if key not in cache:
                    cache.add(key)
                    stack.append((entry, state))
                    if len(stack) > len(best):
                        best = [e.index for e, _ in stack]
                    state = nxt
                    linearized |= 1 << entry.index
                    lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
        else:
            # A return before its call could be placed: backtrack.
            if not stack:
                return False, best
            entry, state = stack.pop()
            linearized &= ~(1 << entry.index)
            unlift(entry)
            entry = entry.next
    return True, None


# --------------------------------------------------------------------------


def _complete(op):
    return INF if op["outcome"] == "unknown" else op["complete"]


def _node_stopped(op):
    """A node that stopped itself answered: failed_precondition "node stopped: …"
    (503 since 2026-11-30; 409 before). Nothing happened there."""
    return (op.get("error") or "").startswith("failed_precondition: node stopped")


def _cancel_result(op):
    """The observed result of a cancel, or 'failed' when nothing happened."""
    if op["outcome"] == "unknown":
        return None
    if op["outcome"] == "ok":
        return "cancelled"
    if op.get("status") == 409 and not _node_stopped(op):
        return "already"
    if op.get("status") == 404:
        return "missing"
    return "failed"  # 503, refused, other definite failures: did not happen


def _read_value(op):
    if op["outcome"] == "ok":
        return op["value"]
    if op.get("status") == 404:
        return "absent"
    return None  # failed or unknown read: no observation


def describe(op):
    what = op["type"]
    if what == "create":
        what += f" key={op.get('key')}"
    else:
        what += f" id={op.get('id')}"
    if op["type"] == "read":
        what += f" ({op.get('consistency')})"
    result = op["outcome"]
    if op.get("status") is not None:
        result += f" {op['status']}"
    if op.get("value") is not None:
        result += f" {op['value']}"
    if op["type"] == "create" and op.get("id") is not None:
        result += f" id={op['id']}"
    end = "inf" if op["outcome"] == "unknown" else f"{op['complete']:.3f}"
    return f"client {op.get('client')} node {op.get('node')} [{op['invoke']:.3f}, {end}] {what} -> {result}"


def check(history, finals, budget=2_000_000):
    """Returns {'anomalies': [...], 'stats': {...}} for a history and final states."""
    anomalies = []
    stats = {"keys": 0, "orders_checked": 0, "inconclusive": 0}

    creates_by_key = {}
    for op in history:
        if op["type"] == "create":
            creates_by_key.setdefault(op["key"], []).append(op)
    stats["keys"] = len(creates_by_key)

    # ---- a node that stopped itself says "go elsewhere": 503, never a 409 ----
    wrong = [op for op in history if _node_stopped(op) and op.get("status") != 503]
    if wrong:
        anomalies.append(anomaly("bad-status", f"{len(wrong)} answer(s) 'node stopped' with a status other than "
                                               f"503, e.g. {describe(wrong[0])}: {wrong[0].get('status')}"))

    # ---- final states: duplicates, phantoms, divergence ----
    final_by_node = {}
    for f in finals:
        by_id = {}
        by_key = {}
        for o in f["orders"]:
            if o["id"] in by_id:
                anomalies.append(anomaly("duplicate", f"node {f['node']} lists order {o['id']} twice", node=f["node"]))
            by_id[o["id"]] = o
            by_key.setdefault(o["product_id"], []).append(o)
        for key, orders in by_key.items():
            if len(orders) > 1:
                anomalies.append(anomaly(
                    "duplicate",
                    f"node {f['node']}: Idempotency-Key {key} applied {len(orders)} times "
                    f"(orders {[o['id'] for o in orders]})", node=f["node"], key=key))
            if key not in creates_by_key:
                anomalies.append(anomaly("phantom", f"node {f['node']}: order(s) {[o['id'] for o in orders]} with "
                                                    f"product_id {key} that no client created", node=f["node"]))
        final_by_node[f["node"]] = (f, by_id, by_key)

    nodes = sorted(final_by_node)
    if nodes:
        reference = final_by_node[nodes[0]][1]
        for n in nodes[1:]:
            other = final_by_node[n][1]
            if other != reference:
                only_a = sorted(set(reference) - set(other))
                only_b = sorted(set(other) - set(reference))
                differ = sorted(i for i in set(reference) & set(other) if reference[i] != other[i])
                anomalies.append(anomaly(
                    "divergence",
                    f"nodes {nodes[0]} and {n} differ: only on {nodes[0]}: {only_a[:10]}, only on {n}: {only_b[:10]}, "
                    f"different content: {differ[:10]}", nodes=[nodes[0], n]))

    # ---- per key: lost, duplicated, failed-but-applied, content ----
    key_to_id = {}
    for key, attempts in creates_by_key.items():
        ok_ids = {op["id"] for op in attempts if op["outcome"] == "ok"}
        if len(ok_ids) > 1:
            anomalies.append(anomaly("duplicate", f"Idempotency-Key {key} acknowledged with different orders "
                                                  f"{sorted(ok_ids)}", key=key))
        possible = any(op["outcome"] in ("ok", "unknown") for op in attempts)
        quantity = attempts[0].get("quantity")
        for n in nodes:
            _, by_id, by_key = final_by_node[n]
            found = by_key.get(key, [])
            if ok_ids and not found:
                anomalies.append(anomaly("lost", f"node {n}: acknowledged order {sorted(ok_ids)} "
                                                 f"(Idempotency-Key {key}) is missing", node=n, key=key))
            for o in found:
                if ok_ids and o["id"] not in ok_ids:
                    anomalies.append(anomaly("lost", f"node {n}: Idempotency-Key {key} was acknowledged as order "
                                                     f"{sorted(ok_ids)} but the node has order {o['id']}", node=n, key=key))
                if not possible:
                    anomalies.append(anomaly(
                        "failed-applied",
                        f"node {n}: order {o['id']} exists, but every create with Idempotency-Key {key} was "
                        f"reported as failed ({[a.get('status') for a in attempts]})", node=n, key=key))
                if quantity is not None and o.get("quantity") != quantity:
                    anomalies.append(anomaly("corrupt", f"node {n}: order {o['id']} has quantity {o.get('quantity')}, "
                                                        f"the client sent {quantity}", node=n, key=key))
            if found:
                key_to_id.setdefault(key, found[0]["id"])
        if key not in key_to_id and len(ok_ids) == 1:
            key_to_id[key] = next(iter(ok_ids))

    # ---- per order: cancels reported failed, linearizability ----
    ops_by_id = {}
    for key, attempts in creates_by_key.items():
        if key not in key_to_id:
            continue
        oid = key_to_id[key]
        for op in attempts:
            if op["outcome"] in ("ok", "unknown"):
                ops_by_id.setdefault(oid, []).append((("create", None, op["invoke"], _complete(op)), op))
    cancel_possible = {}
    for op in history:
        if op["type"] == "cancel":
            r = _cancel_result(op)
            if r == "failed":
                continue
            if r in (None, "cancelled"):
                cancel_possible[op["id"]] = True
            ops_by_id.setdefault(op["id"], []).append((("cancel", r, op["invoke"], _complete(op)), op))
        elif op["type"] == "read" and op.get("consistency") == "linearizable":
            v = _read_value(op)
            if v is None:
                continue
            ops_by_id.setdefault(op["id"], []).append((("read", v, op["invoke"], op["complete"]), op))
    for n in nodes:
        f, by_id, _ = final_by_node[n]
        for oid, o in by_id.items():
            if o["status"] == "cancelled" and not cancel_possible.get(oid):
                anomalies.append(anomaly("failed-applied", f"node {n}: order {oid} is cancelled, but no cancel of it "
                                                           f"succeeded or had an unknown outcome", node=n, id=oid))
        # The final list is a linearizable read of every order touched.
        for oid in set(ops_by_id) | set(by_id):
            o = by_id.get(oid)
            value = "absent" if o is None else o["status"]
            final_op = {"type": "read", "client": "final", "node": n, "id": oid, "outcome": "ok", "status": 200,
                        "value": value, "consistency": "linearizable", "invoke": f["invoke"], "complete": f["complete"]}
            ops_by_id.setdefault(oid, []).append((("read", value, f["invoke"], f["complete"]), final_op))

    for oid in sorted(ops_by_id):
        entries = ops_by_id[oid]
        stats["orders_checked"] += 1
        ok, prefix = linearizable([e[0] for e in entries], budget=budget)
        if ok is None:
            stats["inconclusive"] += 1
            continue
        if not ok:
            ordered = sorted(entries, key=lambda e: e[0][2])
            anomalies.append(anomaly(
                "nonlinearizable",
                f"order {oid}: no linearization of its {len(entries)} operations "
                f"(longest linearizable prefix: {len(prefix)} operations)",
                id=oid, operations=[describe(e[1]) for e in ordered]))

    # ---- read-your-writes and phantom reads, per client ----
    by_client = {}
    for op in history:
        by_client.setdefault(op.get("client"), []).append(op)
    first_effect = {}  # id -> earliest invoke of a create/cancel that could have produced a value
    for oid, entries in ops_by_id.items():
        for (kind, arg, invoke, _), op in entries:
            if op.get("client") == "final":
                continue
            if kind == "create":
                first_effect[(oid, "created")] = min(first_effect.get((oid, "created"), INF), invoke)
            if kind == "cancel" and arg in (None, "cancelled"):
                first_effect[(oid, "cancelled")] = min(first_effect.get((oid, "cancelled"), INF), invoke)
    for client, ops in by_client.items():
        known = {}  # id -> state this client's own acknowledged writes imply
        # Process in completion order for writes, invocation order for reads.
        events = []
        for op in ops:
            if op["type"] in ("create", "cancel") and op["outcome"] == "ok":
                events.append((op["complete"], 1, op))
            elif op["type"] == "read":
                events.append((op["invoke"], 0, op))
        events.sort(key=lambda e: (e[0], e[1]))
        for _, is_write, op in events:
            if is_write:
                if op["type"] == "create":
                    known[op["id"]] = max(known.get(op["id"], ABSENT), CREATED)
                else:
                    known[op["id"]] = CANCELLED
                continue
            v = _read_value(op)
            if v is None:
                continue
            got = VALUE_STATE[v]
            if v != "absent" and first_effect.get((op["id"], v), INF) > op["complete"]:
                anomalies.append(anomaly("phantom-read", f"a read saw order {op['id']} {v} before any operation that "
                                                         f"could make it so was invoked", operation=describe(op)))
            if op.get("consistency") == "read_your_writes" and got < known.get(op["id"], ABSENT):
                anomalies.append(anomaly(
                    "read-your-writes",
                    f"client {client} read order {op['id']} as {v} after its own acknowledged write made it "
                    f"{STATE_NAMES[known[op['id']]]}", operation=describe(op)))
    return {"anomalies": anomalies, "stats": stats}
