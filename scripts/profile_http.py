#!/usr/bin/env python3
"""Where the leader's CPU goes under POST /orders (see scripts/profile-http).

Starts 3 catga-orders processes on 127.0.0.1 (temporary directory, removed at
the end), drives the leader with wrk (create_order.lua, --connections), records
the leader process with `perf record --call-graph dwarf` for --seconds once the
load is steady, and prints the share of the leader's CPU samples per thread and
per stage of a create: each sample goes to the first stage whose functions are
on its stack. Also prints wrk's throughput and the leader's CPU time per create
(user + system from /proc/PID/stat over the recorded window).
"""
import argparse, collections, os, re, shutil, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo  # Node, free_pair, free_port, wait_until, leader_of

HERE = os.path.dirname(os.path.abspath(__file__))

# (stage, regular expression over the sample's stack), first match wins.
LOOP_STAGES = [
    ("answer built on the loop thread: typed result, msgpack -> JSON, RESTinio response, hand-off",
     r"catga::http::detail::reply|Server::send_message|Responder::"),
    ("apply: envelope decode, session table, handler, events, result encode", r"RaftNode::c_apply(?!_done)"),
    ("completion of callers (other than the answer)", r"c_apply_done"),
    ("propose: queue drain, entry packing, raft_apply", r"RaftNode::pump|RaftNode::on_wake|RaftNode::propose"),
    ("libraft + libuv (replication, log writes, timers)", r"raft_|uv_|uv__|libraft"),
    ("waiting / wake-ups (epoll, futex, scheduler)", r"epoll_wait|futex|schedule"),
]
HTTP_STAGES = [
    ("write the response (RESTinio, sendmsg)", r"RestinioResponse::send|write_op<|reactive_socket_send_op|sendmsg"),
    ("request body JSON -> command (nlohmann, msgpack)", r"Request::json|nlohmann|json_to_msgpack"),
    ("send the command: behaviours, envelope, queue to the loop", r"send_receipt|Application::send|RaftNode::propose"),
    ("HTTP parsing and routing (http_parser, RESTinio, router)", r"http_parser|restinio::impl::connection_t|[Rr]outer"),
    ("socket recv", r"recv"),
    ("waiting / wake-ups (epoll, futex, scheduler)", r"epoll_wait|futex|schedule"),
]

def samples(perf_data):
    text = subprocess.run(["perf", "script", "-i", perf_data, "-F", "comm,tid,ip,sym"], capture_output=True,
                          text=True, check=True).stdout
    for block in text.split("\n\n"):
        lines = [l for l in block.split("\n") if l.strip()]
        if not lines: continue
        frames = [l.strip().split(" ", 1)[1] if " " in l.strip() else "?" for l in lines[1:]]
        yield lines[0].split()[0], " | ".join(frames)

def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary", help="catga-orders")
    ap.add_argument("--seconds", type=int, default=8, help="recorded window")
    ap.add_argument("--connections", type=int, default=64)
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="catga-profile-")
    ports = [demo.free_pair() for _ in range(3)]
    cluster = ",".join(f"{i + 1}=127.0.0.1:{p}" for i, p in enumerate(ports))
    nodes = [demo.Node(os.path.abspath(args.binary), i + 1, ports[i], demo.free_port(), cluster, root)
             for i in range(3)]
    perf_data = os.path.join(root, "perf.data")
    wrk = None
    try:
        for n in nodes: n.start()
        leader = demo.wait_until(lambda: demo.leader_of(nodes))
        if not leader: raise SystemExit("profile-http: no leader (logs in " + root + ")")
        wrk = subprocess.Popen(["wrk", "-t", "2", "-c", str(args.connections), "-d", f"{args.seconds + 6}s",
                                "-s", os.path.join(HERE, "wrk", "create_order.lua"),
                                f"http://127.0.0.1:{leader.http_port}"], stdout=subprocess.PIPE, text=True)
        time.sleep(3)
        cpu0 = cpu_seconds(leader.proc.pid)
        subprocess.run(["perf", "record", "-q", "-F", "999", "--call-graph", "dwarf,16384", "-o", perf_data,
                        "-p", str(leader.proc.pid), "--", "sleep", str(args.seconds)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cpu = cpu_seconds(leader.proc.pid) - cpu0
        out = wrk.communicate(timeout=args.seconds + 60)[0]
        m = re.search(r"Requests/sec:\s+([\d.]+)", out)
        rate = float(m.group(1)) if m else 0.0
        counts, threads, total = collections.Counter(), collections.Counter(), 0
        for comm, stack in samples(perf_data):
            total += 1
            threads[comm] += 1
            stages = LOOP_STAGES if comm.startswith("catga-raft") else HTTP_STAGES
            stage = next((name for name, rx in stages if re.search(rx, stack)), "other")
            counts[(comm, stage)] += 1
        print(f"wrk: {rate:,.0f} creates/s at {args.connections} connections; leader CPU "
              f"{cpu * 1e6 / max(rate * args.seconds, 1):.1f} us per create (approximate: wrk's rate over its whole run)")
        print(f"{total} samples; " + ", ".join(f"{k} {v * 100 / total:.1f} %" for k, v in threads.most_common()))
        for (comm, stage), n in sorted(counts.items(), key=lambda x: (x[0][0], -x[1])):
            print(f"{n * 100 / total:5.1f} %  {comm:<14} {stage}")
    finally:
        if wrk and wrk.poll() is None: wrk.kill(); wrk.wait()
        for n in nodes: n.stop()
        shutil.rmtree(root, ignore_errors=True)

if __name__ == "__main__":
    main()
