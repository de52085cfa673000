#!/usr/bin/env python3
"""Drives the 3-node demo of the order service (see scripts/demo).

Usage: demo.py PATH/TO/catga-orders [--orders N] [--keep] [--tls]
Everything runs on 127.0.0.1 with free ports, in a temporary directory that is
removed at the end. Every process started here is stopped on exit or Ctrl-C.
With --tls a throwaway CA is made with openssl and every node gets two
certificates from it: one for HTTPS (127.0.0.1) and one naming its member id
(CN=node-<id>) for mutual TLS 1.3 on the Raft and peer ports; the orders are
created over HTTPS with a writer's bearer token (a reader's token is shown its
403), and one TLS handshake per port shows what each port speaks.
"""
import argparse, http.client, json, os, shutil, signal, socket, ssl, subprocess, sys, tempfile, time

from loopback_ports import free_pair, free_port  # noqa: F401 (also used through this module)


def make_pki(root, names, clients=(), members=()):
    """A throwaway CA (ca.crt) and, for each name, NAME.crt/NAME.key for
    127.0.0.1 and localhost (for each client name a client certificate, for
    each member id M node-M.crt/node-M.key with CN=node-M for the Raft and
    peer ports, used both ways), signed by it: openssl, P-256, valid one day."""
    def run(*cmd):
        subprocess.run(["openssl", *cmd], check=True, capture_output=True)
    ca_key, ca = os.path.join(root, "ca.key"), os.path.join(root, "ca.crt")
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca_key,
        "-out", ca, "-days", "1", "-subj", "/CN=catga demo CA")
    ext = os.path.join(root, "server.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    client_ext = os.path.join(root, "client.ext")
    with open(client_ext, "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    member_ext = os.path.join(root, "member.ext")
    with open(member_ext, "w") as f:
        f.write("extendedKeyUsage=serverAuth,clientAuth\n")
    member_names = [f"node-{m}" for m in members]
    for name in list(names) + list(clients) + member_names:
        key, csr, crt = (os.path.join(root, f"{name}.{x}") for x in ("key", "csr", "crt"))
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr,
            "-subj", f"/CN={name}")
        extfile = ext if name in names else member_ext if name in member_names else client_ext
        run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "1",
            "-extfile", extfile, "-out", crt)
    return ca

def member_context(ca, cert, key):
    """A TLS client context as a member dials another: its own certificate,
    the cluster CA, no host name check (members are named by CN=node-<id>)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(cert, key)
    return ctx

def tls_handshake(port, ctx):
    """One TLS handshake with 127.0.0.1:PORT: (version, cipher, the server
    certificate's CN), or (None, why, None)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=None if not ctx.check_hostname else "127.0.0.1") as s:
                cn = dict(x[0] for x in s.getpeercert()["subject"])["commonName"]
                return s.version(), s.cipher()[0], cn
    except (OSError, ssl.SSLError) as e:
        return None, str(e), None

class Node:
    def __init__(self, binary, nid, raft_port, http_port, cluster, root, extra=(), tls=None, token=None,
                 log_level="warn"):
        self.binary, self.id, self.raft_port, self.http_port = binary, nid, raft_port, http_port
        self.log_level = log_level
        self.extra = list(extra)
        self.tls, self.token = tls, token  # an ssl.SSLContext for HTTPS; a bearer token sent on every request
        self.cluster, self.dir, self.proc = cluster, os.path.join(root, f"node{nid}"), None
        self.log = open(os.path.join(root, f"node{nid}.log"), "ab")
        self.stdout = self.log  # where the process's standard output goes
    def start(self):
        self.proc = subprocess.Popen([self.binary, "--id", str(self.id), "--data-dir", self.dir,
                                      "--http", f"127.0.0.1:{self.http_port}", "--cluster", self.cluster,
                                      "--election-timeout-ms", "150", "--heartbeat-ms", "50", "--log-level", self.log_level] + self.extra,
                                     stdout=self.stdout, stderr=self.log)
    def alive(self): return self.proc is not None and self.proc.poll() is None
    def log_tail(self, lines=25):
        """The last lines of this node's log (standard error), for a failure's report."""
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return b"".join(f.readlines()[-lines:]).decode(errors="replace")
    def kill(self):
        if self.alive(): self.proc.kill(); self.proc.wait()
    def stop(self):
        if self.alive():
            self.proc.terminate()
            try: self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait()
    def request(self, method, path, body=None, headers=None, timeout=10):
        if self.tls: c = http.client.HTTPSConnection("127.0.0.1", self.http_port, timeout=timeout, context=self.tls)
        else: c = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)
        try:
            data = json.dumps(body) if body is not None else None
            h = {"Content-Type": "application/json"} if data else {}
            if self.token: h["Authorization"] = f"Bearer {self.token}"
            h.update(headers or {})
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            text = r.read().decode()
            return r.status, (json.loads(text) if text else None)
        finally:
            c.close()
    def status(self):
        try:
            code, body = self.request("GET", "/raft/status", timeout=2)
            return body if code == 200 else None
        except OSError:
            return None

def bar(done, total, label):
    if not sys.stdout.isatty():  # a log, not a terminal: a line per quarter
        if done == total or done % max(total // 4, 1) == 0:
            print(f"  {label}: {done}/{total}")
        return
    width = 40
    filled = int(width * done / max(total, 1))
    sys.stdout.write(f"\r  {label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    sys.stdout.flush()
    if done == total: sys.stdout.write("\n")

def wait_until(pred, limit=30.0, step=0.05):
    end = time.time() + limit
    while time.time() < end:
        v = pred()
        if v: return v
        time.sleep(step)
    return None

def leader_of(nodes):
    for n in nodes:
        if n.alive():
            s = n.status()
            if s and s["role"] == "leader" and s["ready"]: return n
    return None

def create_orders(nodes, count, start, label, acknowledged):
    live = [n for n in nodes if n.alive()]
    for i in range(count):
        n = live[i % len(live)]
        key = f"demo-{start + i}"
        for attempt in range(50):
            try:
                code, body = n.request("POST", "/orders", {"product_id": f"p{(start + i) % 5}", "quantity": 1 + i % 3},
                                       {"Idempotency-Key": key})
            except OSError:
                code, body = 0, None
            if code == 201:
                acknowledged[body["id"]] = key
                break
            time.sleep(0.1)  # retry with the same key: applied at most once
        else:
            raise SystemExit(f"demo: order {key} was never acknowledged")
        bar(i + 1, count, label)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--orders", type=int, default=300)
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    ap.add_argument("--tls", action="store_true", help="HTTPS with a throwaway CA, and bearer tokens with roles")
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="catga-demo-")
    ports = [free_pair() for _ in range(3)]
    cluster = ",".join(f"{i + 1}=127.0.0.1:{p}" for i, p in enumerate(ports))
    # The cluster secret: every Raft and peer connection proves it (docs/security.md).
    secret_file = os.path.join(root, "peer-secret")
    with os.fdopen(os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write(os.urandom(24).hex() + "\n")
    secure = ["--peer-secret-file", secret_file]
    tls = writer = reader = None
    if args.tls:
        ca = make_pki(root, [f"node{i + 1}" for i in range(3)], members=[1, 2, 3])
        tls = ssl.create_default_context(cafile=ca)
        writer, reader = os.urandom(16).hex(), os.urandom(16).hex()
        credentials = os.path.join(root, "credentials")
        with os.fdopen(os.open(credentials, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(f"token {writer} order-desk writer\ntoken {reader} reporting reader\n")
    def node_flags(i):
        if not args.tls: return secure
        return secure + ["--http-tls-cert-file", os.path.join(root, f"node{i + 1}.crt"),
                         "--http-tls-key-file", os.path.join(root, f"node{i + 1}.key"), "--credentials-file", credentials,
                         "--peer-tls-ca-file", ca, "--peer-tls-cert-file", os.path.join(root, f"node-{i + 1}.crt"),
                         "--peer-tls-key-file", os.path.join(root, f"node-{i + 1}.key")]
    nodes = [Node(os.path.abspath(args.binary), i + 1, ports[i], free_port(), cluster, root, node_flags(i), tls, writer)
             for i in range(3)]
    scheme = "https" if args.tls else "http"

    def cleanup(*_):
        for n in nodes: n.stop()
        if not args.keep: shutil.rmtree(root, ignore_errors=True)
    signal.signal(signal.SIGINT, lambda *_: (cleanup(), sys.exit(130)))
    signal.signal(signal.SIGTERM, lambda *_: (cleanup(), sys.exit(143)))
    try:
        print(f"Starting 3 nodes of catga-orders on 127.0.0.1 (data in {root}), sharing the cluster secret in {secret_file}")
        for n in nodes:
            n.start()
            print(f"  node {n.id}: raft 127.0.0.1:{n.raft_port}, peer :{n.raft_port + 1}, {scheme} {scheme}://127.0.0.1:{n.http_port}, dashboard {scheme}://127.0.0.1:{n.http_port}/")
        leader = wait_until(lambda: leader_of(nodes))
        if not leader: raise SystemExit("demo: no leader was elected (see the node logs in " + root + ")")
        if args.tls:
            # The other two may elect a leader before node 2 has opened its
            # Raft and HTTPS ports (it still asks its peers whether it joined
            # before: docs/operations.md, "Data directory rules").
            if not wait_until(lambda: nodes[1].status()):
                raise SystemExit("demo: node 2 did not start (see the node logs in " + root + ")")
            if not show_ports(nodes[1], root): raise SystemExit("demo: a port of node 2 does not speak TLS")
        print(f"Leader elected: node {leader.id} (term {leader.status()['term']})")

        acknowledged = {}
        t0 = time.time()
        create_orders(nodes, args.orders, 0, "orders through every node", acknowledged)
        rate = args.orders / (time.time() - t0)

        old = leader_of(nodes)
        print(f"Killing the leader, node {old.id}, with SIGKILL")
        killed_at = time.time()
        old.kill()
        new = wait_until(lambda: leader_of(nodes), limit=30)
        if not new: raise SystemExit("demo: no new leader")
        failover_ms = (time.time() - killed_at) * 1000
        print(f"New leader: node {new.id} (term {new.status()['term']}), elected {failover_ms:.0f} ms after the kill")

        create_orders(nodes, args.orders // 3, args.orders, "orders after the failover", acknowledged)
        print(f"Restarting node {old.id}; it catches up from its log and the leader")
        old.start()
        wait_until(lambda: old.status() is not None)

        # Every acknowledged order on every node (linearizable reads).
        expected = set(acknowledged)
        rows = []
        for n in nodes:
            def complete():
                try:
                    code, body = n.request("GET", "/orders?consistency=linearizable")
                except OSError:
                    return None
                return body if code == 200 and expected <= {o["id"] for o in body} else None
            orders = wait_until(complete, limit=30) or []
            ids = [o["id"] for o in orders]
            s = n.status() or {}
            rows.append((n.id, s.get("role", "?"), s.get("term", "?"), s.get("applied_index", "?"),
                         len(set(ids) & expected), len(ids) - len(set(ids))))
        print()
        print(f"  {'node':>4}  {'role':<9} {'term':>4}  {'applied':>7}  {'acknowledged orders present':>27}  {'duplicates':>10}")
        ok = True
        for nid, role, term, applied, present, dups in rows:
            print(f"  {nid:>4}  {role:<9} {term:>4}  {applied:>7}  {present:>17} / {len(expected):<7}  {dups:>10}")
            ok = ok and present == len(expected) and dups == 0
        print()
        if args.tls: ok = show_tls(nodes[0], root, reader) and ok
        print(f"  {len(expected)} orders acknowledged ({rate:.0f} orders/s, one HTTP request at a time), "
              f"leader failover in {failover_ms:.0f} ms")
        print("  every acknowledged order is on every node, none twice" if ok else "  MISMATCH: see the table above")
        return 0 if ok else 1
    finally:
        cleanup()

def show_ports(node, root):
    """One TLS handshake with each port of `node`, as member 1 would (its
    CN=node-1 certificate) and as an HTTPS client: what each port speaks."""
    ca = os.path.join(root, "ca.crt")
    member = member_context(ca, os.path.join(root, "node-1.crt"), os.path.join(root, "node-1.key"))
    member_side = "mutual TLS, this client presented CN=node-1; the cluster secret is checked inside"
    print(f"  Every port of node {node.id} over TLS, certificates from a throwaway CA ({ca}):")
    ok = True
    for label, port, ctx, who in (("raft ", node.raft_port, member, member_side),
                                  ("peer ", node.raft_port + 1, member, member_side),
                                  ("https", node.http_port, ssl.create_default_context(cafile=ca),
                                   "server TLS, callers named by bearer tokens")):
        version, cipher, cn = tls_handshake(port, ctx)
        if version:
            print(f"    {label} 127.0.0.1:{port}: {version} {cipher}, served CN={cn}; {who}")
        else:
            print(f"    {label} 127.0.0.1:{port}: NO TLS HANDSHAKE ({cipher})")
        ok = ok and version == "TLSv1.3"
    return ok

def show_tls(node, root, reader):
    """curl over HTTPS with the demo CA; a reader's POST refused with 403."""
    url = f"https://127.0.0.1:{node.http_port}"
    ok = True
    if shutil.which("curl"):
        cmd = ["curl", "-sS", "--cacert", os.path.join(root, "ca.crt"), "-H", f"Authorization: Bearer {reader}",
               f"{url}/orders?limit=1"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        print(f"  $ curl --cacert ca.crt -H 'Authorization: Bearer <reader token>' '{url}/orders?limit=1'")
        print(f"  {r.stdout.strip() or r.stderr.strip()}")
        ok = r.returncode == 0 and r.stdout.startswith("[")
    code, body = node.request("POST", "/orders", {"product_id": "p1", "quantity": 1}, {"Authorization": f"Bearer {reader}"})
    print(f"  a reader's POST /orders: {code} {json.dumps(body)}")
    return ok and code == 403

if __name__ == "__main__":
    sys.exit(main())
