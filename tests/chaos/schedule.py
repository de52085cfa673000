"""The fault schedule of the chaos test: a pure function of its arguments.

Every fault is {"at": seconds after the start, "kind", "duration", "pick"}; the
nemesis (nemesis.py) turns `pick` into a target when the fault starts (the
leader of that moment, one of its followers, ...). Kinds come in shuffled
rounds, so a short run still sees each kind once.
"""
from __future__ import annotations

import random

# Always. CLASSIC are the kinds of the schedules before 2026-11-30: with
# --classic, a seed replays the schedule it had then (same kinds, same order).
CLASSIC = ["kill_leader", "kill_follower", "pause_leader", "pause_follower", "restart_node", "restart_cluster",
           "partition_leader", "partition_follower", "partition_oneway", "drop_connections"]
KINDS = CLASSIC + ["blackhole_link", "membership", "rolling_restart"]
KINDS_5 = ["split_majority", "kill_two"]
# Need the proxy network.
PARTITIONS = {"partition_leader", "partition_follower", "partition_oneway", "split_majority", "drop_connections",
              "blackhole_link"}
# --long-kills (always with --network direct): a follower down long enough to
# need a snapshot from the leader (InstallSnapshot).
KINDS_LONG_KILL = ["kill_long"]
# --long-pauses: SIGSTOP beyond the 10 s request timeout, so that commands in
# flight on the paused node reach their deadline (504 territory).
KINDS_LONG_PAUSE = ["pause_long_leader", "pause_long_follower"]
# --clock-jumps: a node restarted under a wall clock a day ahead or an hour
# behind (libfaketime), then restarted on the real clock; and a running node's
# wall clock moved a day ahead or an hour behind, then back (the _live kinds).
KINDS_CLOCK = ["clock_ahead", "clock_behind", "clock_ahead_live", "clock_behind_live"]
# --disk-faults: the filesystem under a node's data directory shuts down
# (every I/O fails, as a dying disk), or fills up.
KINDS_DISK = ["disk_shutdown", "disk_full"]


def kinds_for(nodes, network="proxy", long_kills=False, long_pauses=False, clock_jumps=False, disk_faults=False,
              classic=False):
    kinds = (CLASSIC if classic else KINDS) + (KINDS_5 if nodes >= 5 else [])
    if network == "direct":
        kinds = [k for k in kinds if k not in PARTITIONS]
    if network == "direct" or long_kills:
        kinds = kinds + KINDS_LONG_KILL
    if long_pauses:
        kinds = kinds + KINDS_LONG_PAUSE
    if clock_jumps:
        kinds = kinds + KINDS_CLOCK
    if disk_faults:
        kinds = kinds + KINDS_DISK
    return kinds


def duration_of(kind, rng, e):
    """How long a fault lasts; `e` is the election timeout in seconds."""
    if kind == "kill_long":
        return rng.uniform(25.0, 40.0)
    if kind.startswith("kill"):
        return rng.uniform(0.5, 3.0)                 # down time before the restart
    if kind.startswith("pause_long"):
        return rng.uniform(10.5, 14.0)
    if kind.startswith("pause"):
        return rng.uniform(2.0, 6.0) * e             # SIGSTOP longer than an election timeout
    if kind == "restart_cluster":
        return rng.uniform(0.3, 2.0)
    if kind in ("restart_node", "drop_connections", "membership", "rolling_restart", "disk_shutdown"):
        return 0.0                                   # as long as the fault takes
    if kind.startswith("clock") or kind == "disk_full":
        return rng.uniform(3.0, 8.0)
    return rng.uniform(1.0, 4.0)                     # partitions, black holes


def make_schedule(seed, seconds, nodes, election_ms, network="proxy", long_kills=False, long_pauses=False,
                  clock_jumps=False, disk_faults=False, classic=False, warmup=3.0):
    """The fault schedule: a pure function of (seed, seconds, nodes, election timeout, network, options)."""
    rng = random.Random(f"schedule-{seed}")
    kinds = kinds_for(nodes, network, long_kills, long_pauses, clock_jumps, disk_faults, classic)
    e = election_ms / 1000.0
    schedule, bag, t = [], [], warmup
    while True:
        if not bag:
            bag = kinds[:]
            rng.shuffle(bag)
        kind = bag.pop()
        duration = duration_of(kind, rng, e)
        gap = rng.uniform(1.5, 3.5)
        pick = rng.randrange(1 << 30)
        if t + duration > seconds - 2.0:
            break
        schedule.append({"at": round(t, 2), "kind": kind, "duration": round(duration, 2), "pick": pick})
        t += duration + gap
    return schedule


def format_schedule(schedule):
    return "\n".join(f"  t+{f['at']:6.2f}s  {f['kind']:<18} duration {f['duration']:.2f}s  pick {f['pick']}"
                     for f in schedule)
