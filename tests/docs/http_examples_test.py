#!/usr/bin/env python3
"""Runs the HTTP examples of a document against a real catga-orders.

    http_examples_test.py PATH/TO/catga-orders DOC.md

Every ```sh block whose fence follows `<!-- doc-test: http -->` is a list of
commands, each followed by its expectation:

    curl -s localhost:8080/orders/999
    # → 404 "not_found"

The command runs in bash with `curl` wrapped to print the status and keep the
body, `localhost:8080` pointing at a catga-orders started here (one node on
127.0.0.1, free ports, its own directory) and $TOKEN set to its admin token.
The status must match and the text after it, if any, must appear in the body.
"""
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import demo  # Node, free_port, free_pair, wait_until

MARKER = "<!-- doc-test: http -->"
EXPECT = re.compile(r"^# → (?P<status>\d{3})(?: (?P<excerpt>.*))?$")


def examples(doc):
    """Yields (line number, command, status, excerpt)."""
    lines = pathlib.Path(doc).read_text(encoding="utf-8").splitlines()
    found = False
    for i, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        if i + 1 >= len(lines) or not lines[i + 1].startswith("```"):
            raise SystemExit(f"{doc}:{i + 1}: the marker must precede a code fence")
        found = True
        j = i + 2
        command = None
        while j < len(lines) and not lines[j].startswith("```"):
            text = lines[j]
            expect = EXPECT.match(text)
            if expect:
                if command is None:
                    raise SystemExit(f"{doc}:{j + 1}: an expectation without a command")
                yield command[0], command[1], int(expect.group("status")), expect.group("excerpt") or ""
                command = None
            elif text.strip():
                if command is not None:
                    raise SystemExit(f"{doc}:{command[0]}: a command without '# → STATUS' after it")
                command = (j + 1, text)
            j += 1
        if command is not None:
            raise SystemExit(f"{doc}:{command[0]}: a command without '# → STATUS' after it")
    if not found:
        raise SystemExit(f"{doc}: no '{MARKER}' block")


def main():
    binary, doc = sys.argv[1], sys.argv[2]
    cases = list(examples(doc))
    root = tempfile.mkdtemp(prefix="catga-doc-http-")
    token = "doc-test-token"
    raft = demo.free_pair()
    port = demo.free_port()
    node = demo.Node(binary, 1, raft, port, f"1=127.0.0.1:{raft}", root, extra=["--admin-token", token])
    failures = 0
    try:
        node.start()
        if not demo.wait_until(lambda: (node.status() or {}).get("ready"), limit=30):
            print("catga-orders did not become ready", file=sys.stderr)
            return 1
        body_file = os.path.join(root, "body")
        wrapper = (f"curl() {{ command curl -sS --max-time 30 -o '{body_file}' -w '%{{http_code}}' \"$@\"; }}\n")
        for line, command, status, excerpt in cases:
            if os.path.exists(body_file):
                os.remove(body_file)
            run = command.replace("localhost:8080", f"127.0.0.1:{port}")
            result = subprocess.run(["bash", "-c", wrapper + run], capture_output=True, text=True, timeout=60,
                                    env=dict(os.environ, TOKEN=token))
            got = result.stdout.strip()
            body = pathlib.Path(body_file).read_text(errors="replace") if os.path.exists(body_file) else ""
            if got != str(status) or excerpt not in body:
                failures += 1
                print(f"{doc}:{line}: FAIL {command}\n  expected {status} {excerpt}\n  got {got or '(nothing)'} "
                      f"{body[:300]}\n  {result.stderr.strip()}", file=sys.stderr)
            else:
                print(f"{doc}:{line}: ok {status}")
    finally:
        node.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(f"{len(cases) - failures} of {len(cases)} HTTP examples answered as documented")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
