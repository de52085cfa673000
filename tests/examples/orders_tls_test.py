#!/usr/bin/env python3
"""catga-orders over HTTPS with callers: a one-member cluster serving HTTPS
(a throwaway CA made with openssl), a credentials file with a reader and a
writer token, and the example's RoleAuthorization behaviour: the writer
creates, the reader reads but its POST /orders gets 403 with a clear body,
no or an unknown token gets 401, and the certificate reloads on change, and
on SIGHUP (with the Raft and peer ports' certificates, each logged).
Usage: orders_tls_test.py PATH/TO/catga-orders"""
import os, shutil, signal, socket, ssl, sys, tempfile, unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import demo  # Node, free_pair, free_port, wait_until, make_pki

BINARY = None
WRITER, READER = "writer-token-0123456789", "reader-token-0123456789"


class OrdersTls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="catga-orders-tls-")
        ca = demo.make_pki(cls.root, ["node1", "renewed"])
        credentials = os.path.join(cls.root, "credentials")
        with open(credentials, "w") as f:
            f.write(f"token {WRITER} order-desk writer\ntoken {READER} reporting reader\n")
        raft = demo.free_pair()
        cls.cert, cls.key = os.path.join(cls.root, "node1.crt"), os.path.join(cls.root, "node1.key")
        cls.node = demo.Node(BINARY, 1, raft, demo.free_port(), f"1=127.0.0.1:{raft}", cls.root,
                             ["--http-tls-cert-file", cls.cert, "--http-tls-key-file", cls.key,
                              "--credentials-file", credentials, "--http-tls-reload-ms", "100"],
                             tls=ssl.create_default_context(cafile=ca), token=WRITER)
        cls.node.start()
        if not demo.wait_until(lambda: demo.leader_of([cls.node]), limit=60):
            cls.tearDownClass()
            raise RuntimeError("the node never became a ready leader")

    @classmethod
    def tearDownClass(cls):
        cls.node.stop()
        shutil.rmtree(cls.root, ignore_errors=True)

    def call(self, method, path, body=None, token=None):
        return self.node.request(method, path, body, {"Authorization": f"Bearer {token}"} if token else None)

    def test_writers_write_readers_read(self):
        code, order = self.call("POST", "/orders", {"product_id": "pen", "quantity": 2}, WRITER)
        self.assertEqual(code, 201, order)
        code, got = self.call("GET", f"/orders/{order['id']}", token=READER)
        self.assertEqual((code, got["product_id"]), (200, "pen"))
        code, body = self.call("POST", "/orders", {"product_id": "pen", "quantity": 1}, READER)
        self.assertEqual(code, 403)
        self.assertEqual(body["error"]["code"], "permission_denied")
        self.assertIn("reporting may not send orders.create.v1: it needs the role writer", body["error"]["message"])

    def test_callers_without_valid_credentials_get_401(self):
        anonymous = demo.Node(BINARY, 1, self.node.raft_port, self.node.http_port, "", self.root, tls=self.node.tls)
        code, body = anonymous.request("GET", "/orders")
        anonymous.log.close()
        self.assertEqual((code, body["error"]["code"]), (401, "unauthenticated"))
        code, body = self.call("GET", "/orders", token="not-a-listed-token")
        self.assertEqual(code, 401)
        self.assertIn("the bearer token is not known", body["error"]["message"])

    def test_the_certificate_reloads_on_change(self):
        def served_name():
            with socket.create_connection(("127.0.0.1", self.node.http_port)) as raw:
                with self.node.tls.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    return dict(x[0] for x in s.getpeercert()["subject"])["commonName"]
        self.assertEqual(served_name(), "node1")
        for ext in ("key", "crt"):  # renamed into place, as a certificate manager does
            os.replace(os.path.join(self.root, f"renewed.{ext}"), os.path.join(self.root, f"node1.{ext}"))
        self.assertTrue(demo.wait_until(lambda: served_name() == "renewed", limit=30))

    def test_sighup_reloads_every_certificate_and_says_so(self):
        """No reload interval: the HTTPS certificate changes on SIGHUP only,
        and the node logs what it reloaded on each port."""
        root = os.path.join(self.root, "sighup")
        os.makedirs(root)
        ca = demo.make_pki(root, ["node1", "renewed"], members=[1])
        raft = demo.free_pair()
        files = lambda name: [os.path.join(root, f"{name}.crt"), os.path.join(root, f"{name}.key")]
        node = demo.Node(BINARY, 1, raft, demo.free_port(), f"1=127.0.0.1:{raft}", root,
                         ["--http-tls-cert-file", files("node1")[0], "--http-tls-key-file", files("node1")[1],
                          "--peer-tls-ca-file", ca, "--peer-tls-cert-file", files("node-1")[0],
                          "--peer-tls-key-file", files("node-1")[1]],
                         tls=ssl.create_default_context(cafile=ca), log_level="info")
        node.start()
        try:
            self.assertTrue(demo.wait_until(lambda: demo.leader_of([node]), limit=60))
            def served_name():
                with socket.create_connection(("127.0.0.1", node.http_port)) as raw:
                    with node.tls.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                        return dict(x[0] for x in s.getpeercert()["subject"])["commonName"]
            for path, new in zip(files("node1"), files("renewed")):
                os.replace(new, path)
            self.assertEqual(served_name(), "node1")  # nothing reloads by itself here
            node.proc.send_signal(signal.SIGHUP)
            self.assertTrue(demo.wait_until(lambda: served_name() == "renewed", limit=30))
            self.assertTrue(node.alive())
            lines = ("SIGHUP: reloading certificates and credentials",
                     f"HTTP server on port {node.http_port}: its TLS and credentials files (those configured) reloaded",
                     f"raft node 1: TLS credentials reloaded (CA {ca}",
                     f"peer channel of node 1: TLS credentials reloaded (CA {ca}")
            def log():
                with open(os.path.join(root, "node1.log")) as f:
                    return f.read()
            demo.wait_until(lambda: all(line in log() for line in lines), limit=30)  # written after the HTTPS reload
            for line in lines:
                self.assertIn(line, log())
        finally:
            node.stop()
            node.log.close()


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main()
