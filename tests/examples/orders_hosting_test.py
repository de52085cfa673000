#!/usr/bin/env python3
"""catga-orders as a hosted process: options from CATGA_* environment
variables (no flags), JSON log lines, SIGTERM stopping the server then the
node with exit code 0, a bad member list refused with a clear error, and an
exit() from a library saying so with its caller's stack.
Usage: orders_hosting_test.py PATH/TO/catga-orders"""
import json, os, shutil, signal, subprocess, sys, tempfile, unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import demo  # free_port, free_pair, wait_until

BINARY = None


def get(port, path):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def ready(port):
    try:
        return get(port, "/health/ready")[0] == 200
    except OSError:
        return False


class Hosting(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="catga-orders-hosting-")

    def tearDown(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def test_environment_json_logs_and_sigterm(self):
        raft, port = demo.free_pair(), demo.free_port()
        env = dict(os.environ, CATGA_ID="1", CATGA_CLUSTER=f"1=127.0.0.1:{raft}",
                   CATGA_DATA_DIR=os.path.join(self.root, "data"), CATGA_HTTP=f"127.0.0.1:{port}",
                   CATGA_LOG_FORMAT="json", CATGA_ELECTION_TIMEOUT_MS="150", CATGA_HEARTBEAT_MS="50")
        log_path = os.path.join(self.root, "stderr")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([BINARY], env=env, stdout=log, stderr=log)
        try:
            self.assertTrue(demo.wait_until(lambda: ready(port), limit=30), "not ready: options from the environment ignored?")
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=30), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        lines = [l for l in open(log_path, encoding="utf-8").read().splitlines() if l.strip()]
        entries = [json.loads(l) for l in lines]  # every line is one JSON object
        messages = [e["message"] for e in entries]
        self.assertTrue(any(f"HTTP on 127.0.0.1:{port}" in m for m in messages), messages)
        shutdown = [i for i, m in enumerate(messages) if m.startswith("shutting down (Terminated)")]
        self.assertEqual(len(shutdown), 1, messages)
        self.assertEqual(messages[-1], "stopped")
        self.assertTrue({"time", "level", "logger", "message"} <= set(entries[-1]))

    def test_an_exit_outside_main_names_its_caller(self):
        # Regression: in a chaos run a node exited with status 1 and no log
        # line. A library that calls exit() (here libfaketime, which the chaos
        # harness preloads, failing to parse its clock file) now leaves the
        # stack of the thread that called it in the log.
        lib = next((p for p in ("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
                                "/usr/lib/faketime/libfaketime.so.1") if os.path.exists(p)), None)
        if lib is None:
            self.skipTest("libfaketime is not installed (scripts/setup installs it)")
        raft, port = demo.free_pair(), demo.free_port()
        clock = os.path.join(self.root, "clock")
        with open(clock, "w") as f:
            f.write("+0\n")
        env = dict(os.environ, LD_PRELOAD=lib, FAKETIME_TIMESTAMP_FILE=clock, FAKETIME_NO_CACHE="1",
                   FAKETIME_DONT_FAKE_MONOTONIC="1", NO_FAKE_STAT="1")
        log_path = os.path.join(self.root, "stderr")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([BINARY, "--id", "1", "--cluster", f"1=127.0.0.1:{raft}", "--data-dir",
                                     os.path.join(self.root, "data"), "--http", f"127.0.0.1:{port}"],
                                    env=env, stdout=log, stderr=log)
        try:
            self.assertTrue(demo.wait_until(lambda: ready(port), limit=30), "not ready")
            with open(clock + ".tmp", "w") as f:
                f.write("not a time\n")
            os.replace(clock + ".tmp", clock)
            self.assertEqual(proc.wait(timeout=30), 1)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        text = open(log_path, encoding="utf-8", errors="replace").read()
        self.assertIn("exit() called outside main's return paths", text)
        self.assertIn("libfaketime.so", text.split("exit() called outside main's return paths", 1)[1])

    def test_a_flag_wins_over_the_environment(self):
        env = dict(os.environ, CATGA_CLUSTER="1=127.0.0.1:1")
        r = subprocess.run([BINARY, "--cluster", "1=127.0.0.1:7001,1=127.0.0.1:7002",
                            "--data-dir", os.path.join(self.root, "d")], env=env, capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("repeats id 1", r.stderr)

    def test_a_bad_environment_value_is_refused(self):
        env = dict(os.environ, CATGA_LOG_FORMAT="xml", CATGA_DATA_DIR=os.path.join(self.root, "d"))
        r = subprocess.run([BINARY], env=env, capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("log-format", r.stderr)


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main()
