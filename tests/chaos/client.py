"""The clients of the chaos test: concurrent HTTP clients of catga-orders that
create, cancel and read orders on random nodes and record every request
(invoke and completion times, outcome) for the checker (checker.py).

Outcomes: "ok" (2xx), "failed" (4xx, 503, connection refused: nothing
happened), "unknown" (504, other 5xx, a broken connection: it may have
applied). A create is retried with the same Idempotency-Key, so it applies at
most once; a logical operation is one client action with its retries.
"""
from __future__ import annotations

import http.client
import json
import random
import threading
import time

from cluster import HOST

CLIENT_TIMEOUT = 12.0      # the server answers 504 after its request_timeout (10 s) first
LOGICAL_DEADLINE = 10.0    # an operation (with its retries) succeeded if it got an answer within this



def error_text(status, payload):
    """An error answer's "code: message" (the body's {"error": {...}}), or None."""
    if status is None or status < 400 or not isinstance(payload, dict) or not isinstance(payload.get("error"), dict):
        return None
    e = payload["error"]
    return f"{e.get('code', '')}: {e.get('message', '')}"


def node_stopped(error):
    """A node that stopped itself answers failed_precondition "node stopped: …"
    (503; 409 before 2026-11-30): nothing happened there, and it says nothing
    about the order."""
    return bool(error) and error.startswith("failed_precondition: node stopped")

class Recorder:
    def __init__(self):
        self.ops = []
        self.lock = threading.Lock()
        self.ids = []  # acknowledged order ids, for other clients to read and cancel

    def add(self, op):
        with self.lock:
            self.ops.append(op)

    def add_id(self, oid):
        with self.lock:
            self.ids.append(oid)

    def random_id(self, rng):
        with self.lock:
            if not self.ids:
                return None
            recent = self.ids[-300:]
            return recent[rng.randrange(len(recent))]


class Client(threading.Thread):
    def __init__(self, cid, seed, cluster, recorder, stop, pace):
        super().__init__(name=f"client-{cid}", daemon=True)
        self.cid, self.cluster, self.recorder, self.stop, self.pace = cid, cluster, recorder, stop, pace
        self.rng = random.Random(f"client-{seed}-{cid}")
        self.seed = seed
        self.conns = {}
        self.own = []          # ids this client created
        self.max_index = 0     # highest X-Catga-Index of this client's acknowledged commands
        self.n = 0
        self.lop = 0           # logical operation counter

    # One HTTP exchange on a kept-alive connection; classifies the outcome.
    def call(self, node, method, path, body=None, headers=None):
        conn = self.conns.get(node.id)
        fresh = conn is None
        if fresh:
            conn = http.client.HTTPConnection(HOST, node.http_port, timeout=CLIENT_TIMEOUT)
            self.conns[node.id] = conn
        h = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body)
            h["Content-Type"] = "application/json"
        try:
            if conn.sock is None:
                try:
                    conn.connect()
                except ConnectionRefusedError:
                    self._drop(node.id)
                    return None, {}, None, "refused"
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            text = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
            if r.will_close:
                self._drop(node.id)
            try:
                payload = json.loads(text) if text else None
            except ValueError:
                payload = None
            return r.status, hdrs, payload, error_text(r.status, payload)
        except (OSError, http.client.HTTPException) as e:
            self._drop(node.id)
            return None, {}, None, type(e).__name__

    def _drop(self, nid):
        c = self.conns.pop(nid, None)
        if c is not None:
            try:
                c.close()
            except OSError:
                pass

    def pick_node(self):
        ids = sorted(self.cluster.nodes)
        return self.cluster.nodes[ids[self.rng.randrange(len(ids))]]

    def record(self, kind, node, invoke, status, error, **fields):
        complete = time.monotonic()
        if status is None:
            outcome = "failed" if error == "refused" else "unknown"
        elif 200 <= status < 300:
            outcome = "ok"
        elif status == 504 or status >= 500 and status != 503:
            outcome = "unknown"
        else:
            outcome = "failed"  # 4xx, 503: nothing happened
        op = {"type": kind, "client": self.cid, "node": node.id, "invoke": invoke, "complete": complete,
              "outcome": outcome, "status": status, "error": error, "lop": self.lop}
        op.update(fields)
        self.recorder.add(op)
        return op

    def create(self):
        self.n += 1
        key = f"s{self.seed}-c{self.cid}-{self.n}"
        quantity = self.rng.randint(1, 9)
        for attempt in range(5):
            node = self.pick_node()
            t0 = time.monotonic()
            status, hdrs, body, err = self.call(node, "POST", "/orders", {"product_id": key, "quantity": quantity},
                                                {"Idempotency-Key": key})
            oid = body.get("id") if status == 201 and isinstance(body, dict) else None
            index = int(hdrs.get("x-catga-index", 0) or 0)
            op = self.record("create", node, t0, status, err, key=key, quantity=quantity, id=oid, index=index,
                             attempt=attempt)
            if op["outcome"] == "ok":
                if oid is None or body.get("product_id") != key:
                    op["outcome"], op["error"] = "unknown", f"unexpected body {body!r}"
                    return
                self.own.append(oid)
                self.recorder.add_id(oid)
                self.max_index = max(self.max_index, index)
                return
            if self.stop.is_set():
                return
            if op["outcome"] == "unknown" and self.rng.random() < 0.85:
                time.sleep(self.rng.uniform(0.05, 0.3))   # retry the same key: applies at most once
                continue
            if op["outcome"] == "failed" and status in (503, None) and self.rng.random() < 0.5:
                time.sleep(self.rng.uniform(0.05, 0.3))
                continue
            return

    def cancel(self):
        oid = self.recorder.random_id(self.rng)
        if oid is None:
            return
        for attempt in range(3):
            node = self.pick_node()
            t0 = time.monotonic()
            status, hdrs, body, err = self.call(node, "POST", f"/orders/{oid}/cancel")
            index = int(hdrs.get("x-catga-index", 0) or 0)
            op = self.record("cancel", node, t0, status, err, id=oid, index=index, attempt=attempt,
                             value=(body or {}).get("status") if status == 200 else None)
            if op["outcome"] == "ok":
                if op["value"] != "cancelled":
                    op["outcome"], op["error"] = "unknown", f"unexpected body {body!r}"
                self.max_index = max(self.max_index, index)
                return
            if status == 404 or (status == 409 and not node_stopped(err)) or self.stop.is_set():
                return
            time.sleep(self.rng.uniform(0.05, 0.2))

    def read(self):
        r = self.rng.random()
        if self.own and r < 0.35:
            oid, consistency = self.own[-1 - self.rng.randrange(min(len(self.own), 20))], "read_your_writes"
        else:
            oid = self.recorder.random_id(self.rng)
            consistency = "linearizable" if r < 0.75 else "local"
        if oid is None:
            return
        for attempt in range(3):
            node = self.pick_node()
            path = f"/orders/{oid}?consistency={consistency}"
            headers = {}
            if consistency == "read_your_writes":
                path = f"/orders/{oid}"
                headers["X-Catga-Min-Index"] = str(self.max_index)
            t0 = time.monotonic()
            status, hdrs, body, err = self.call(node, "GET", path, headers=headers)
            value = (body or {}).get("status") if status == 200 else None
            op = self.record("read", node, t0, status, err, id=oid, consistency=consistency, value=value,
                             min_index=self.max_index if consistency == "read_your_writes" else 0, attempt=attempt)
            if op["outcome"] == "ok" and value not in ("created", "cancelled"):
                op["outcome"], op["error"] = "unknown", f"unexpected body {body!r}"
            if op["outcome"] == "ok" or status == 404 or self.stop.is_set():
                return
            time.sleep(self.rng.uniform(0.05, 0.2))

    def run(self):
        try:
            while not self.stop.is_set():
                self.lop += 1
                r = self.rng.random()
                if r < 0.35 or not self.own:
                    self.create()
                elif r < 0.45:
                    self.cancel()
                else:
                    self.read()
                time.sleep(self.rng.uniform(0, self.pace))
        finally:
            for nid in list(self.conns):
                self._drop(nid)
