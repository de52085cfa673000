"""Free ports on 127.0.0.1 for nodes this process is about to start: the demo,
the benchmarks and the Python tests (tests/support/cluster.hpp does the same
for the C++ tests, with the same claims).

A port is picked at random *below* the kernel's ephemeral range
(ip_local_port_range). A port the kernel hands out for bind(0) lies inside
that range, and so does the local end of every outgoing connection; between
the pick and the node's bind, a connection of the cluster itself or of a test
running beside it can take it. A node whose peer port is taken exits, and
then a new cluster does not form at all: its other members refuse to
bootstrap without it (docs/operations.md, "The bootstrap guard"). Seen in CI
as "no leader" after 30 s.

Each port picked is also claimed for the life of this process: an abstract
Unix socket named after it (no file; the kernel releases it however the
process ends), so that no other test process picks it meanwhile.
"""
import random
import socket

HOST = "127.0.0.1"
_claims = []  # the claiming sockets, held until the process exits
_pick = random.SystemRandom()


def ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(port):
    s = socket.socket()
    try:
        s.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _claim(port):
    """False if another process holds the claim on `port`."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(f"\0catga-test-port-{port}")
    except OSError:
        s.close()
        return False
    _claims.append(s)
    return True


def free_port():
    """A port that was free a moment ago, below the ephemeral range, claimed by this process."""
    lo, _ = ephemeral_range()
    high = lo - 1
    low = max(1024, high - 12000)
    for _ in range(1000):
        p = _pick.randint(low, high) if high > low else 0
        if p == 0:
            break
        if _bindable(p) and _claim(p):
            return p
    s = socket.socket()  # no room below the ephemeral range: the kernel's pick
    s.bind((HOST, 0))
    p = s.getsockname()[1]
    s.close()
    return p


def free_pair():
    """A port P with P+1 also free (a node's Raft port and its peer-channel port)."""
    for _ in range(500):
        p = free_port()
        if p < 65535 and _bindable(p + 1) and _claim(p + 1):
            return p
    raise RuntimeError("no free pair of ports on 127.0.0.1")
