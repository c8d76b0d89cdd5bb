#!/usr/bin/env python3
"""`make chaos`: real meshqd processes under a seeded nemesis, judged by the checker.

Steps: clean what a killed earlier run left (processes by pid file, tmpfs
mounts, mqc-* namespaces); build the network (net.py) and the tmpfs disks;
move into the hub namespace; start the nodes and wait for a leader; run the
clients (clients.py) and the nemesis (nemesis.py) for DURATION seconds; stop
the clients, heal everything, wait for a leader and empty mailboxes; drain
every queue through the leader (TAKE of all the workload's queues and the
dead-letter queue, ACK each task, until the leader's STATS show nothing
ready, delayed or leased in any of them and every mailbox is empty); run the
checker (checker.py) and write the output folder. Everything built is torn
down on exit, on Ctrl-C and on SIGTERM. Exit status: 0 clean, 1 a violation
(or the cluster never recovered for the drain, or a node crashed), 2 the
harness itself failed, 130 interrupted (Ctrl-C, SIGTERM).

Runs are serialised by a lock on /run/meshq-chaos.lock.
"""

import argparse
import fcntl
import json
import os
import random
import shlex
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import checker                      # noqa: E402
import cluster                      # noqa: E402
import net                          # noqa: E402
import report                       # noqa: E402
from clients import DRAIN_QUEUES, QUEUES, Client, start_clients   # noqa: E402
from history import Recorder        # noqa: E402
from nemesis import Nemesis, schedule       # noqa: E402

ACK_TIMEOUT_MS = 5000
FATAL_SIGNALS = {signal.SIGILL, signal.SIGSEGV, signal.SIGABRT, signal.SIGTRAP, signal.SIGBUS,
                 signal.SIGFPE}


def log(msg):
    print(f"chaos: {msg}", flush=True)


def wait_for(what, deadline, probe, interval=0.2):
    while time.monotonic() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(interval)
    log(f"gave up waiting for {what}")
    return None


def agreed_leader(nodes):
    """A leader every running node names, or None."""
    leader = cluster.find_leader(nodes)
    if leader is None:
        return None
    for node in nodes:
        st = cluster.status(node.i)
        if st is None or st.get("leader") != str(leader):
            return None
    return leader


def mailboxes_empty(nodes):
    for node in nodes:
        st = cluster.status(node.i)
        if st is None or st.get("mailbox") != "0":
            return False
    return True


def queues_empty(leader):
    """True when the leader's STATS show nothing ready, delayed or leased in
    any queue the drain takes from (STATUS `ready` leaves delayed tasks out)."""
    for q in DRAIN_QUEUES:
        line = cluster.request(leader, f"STATS {q}", timeout=2.0)
        if not line or not line.startswith("STATS "):
            return False
        st = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
        if any(st.get(k) != "0" for k in ("ready", "delayed", "inflight")):
            return False
    return True


def drain(nodes, rec, deadline):
    """TAKE and ACK through the leader until nothing is left anywhere."""
    leader = wait_for("an agreed leader after healing", deadline, lambda: agreed_leader(nodes))
    if leader is None:
        return "no leader all nodes agree on after healing"
    if not wait_for("empty mailboxes", deadline, lambda: mailboxes_empty(nodes)):
        return "mailboxes never emptied"
    drainer = Client("drain", "consumer", len(nodes), rec, 0, 1, threading.Event())
    drainer.nodes = [leader]
    while time.monotonic() < deadline:
        if drainer.conn is None and not drainer.connect():
            drainer.drop()
            time.sleep(0.5)
            drainer.nodes = [cluster.find_leader(nodes) or leader]
            continue
        reply = drainer.call("take", f"TAKE {','.join(DRAIN_QUEUES)} 1000", ",".join(DRAIN_QUEUES),
                             timeout=10)
        if reply and reply.startswith("JOB "):
            tid = reply.split(" ")[1]
            if drainer.conn:
                drainer.call("ack", f"ACK {tid}", tid)
            continue
        if reply == "EMPTY":
            st = cluster.status(drainer.nodes[0])
            if st and st.get("role") == "leader" and st.get("ready") == "0" \
                    and st.get("inflight") == "0" and mailboxes_empty(nodes) \
                    and queues_empty(drainer.nodes[0]):
                drainer.drop()
                return None
            continue
        if reply is not None:
            drainer.last_error = f"node {drainer.nodes[0]} answered {reply!r} to TAKE"
        drainer.drop()
        time.sleep(0.5)
        drainer.nodes = [cluster.find_leader(nodes) or leader]
    drainer.drop()
    return ("the queue was not empty before the drain deadline" +
            (f" (last failure: {drainer.last_error})" if drainer.last_error else ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--rate", type=float, default=40, help="commands per second, all clients")
    ap.add_argument("--meshqd", default=".build/release/meshqd")
    ap.add_argument("--out", default="chaos-out")
    ap.add_argument("--clients", type=int, default=3, help="producers, and as many consumers")
    args = ap.parse_args()
    if os.geteuid() != 0:
        log("needs root (network namespaces, nftables, tmpfs mounts)")
        return 2
    if args.nodes < 3:
        log("NODES must be at least 3")
        return 2
    meshqd = os.path.abspath(args.meshqd)
    if not os.access(meshqd, os.X_OK):
        log(f"no meshqd at {meshqd} (make release)")
        return 2
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 1 << 31)
    out = os.path.abspath(os.path.join(
        args.out, time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-seed{seed}"))
    os.makedirs(out, exist_ok=True)
    replay = (f"make chaos NODES={args.nodes} DURATION={args.duration:g} SEED={seed} "
              f"RATE={args.rate:g}")
    with open(f"{out}/seed", "w") as f:
        f.write(f"{seed}\n")
    with open(f"{out}/replay.sh", "w") as f:
        f.write(f"#!/bin/sh\n# replays the same fault schedule\n{replay}\n")
    faults = schedule(seed, args.duration, args.nodes)
    with open(f"{out}/schedule.json", "w") as f:
        json.dump(faults, f, indent=1)
    log(f"seed {seed}, {len(faults)} faults scheduled, output in {out}")

    lock = open("/run/meshq-chaos.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    network = net.Network(args.nodes)
    nodes = []
    rec = None
    status = 2
    try:
        cluster.clean_stale()
        net.remove_all()
        network.setup()
        conf = f"{cluster.ROOT}/meshq.conf"
        with open(conf, "w") as f:
            f.write(cluster.config_text(args.nodes, ACK_TIMEOUT_MS, QUEUES))
        with open(f"{out}/meshq.conf", "w") as f:
            f.write(cluster.config_text(args.nodes, ACK_TIMEOUT_MS, QUEUES))
        nodes = [cluster.Node(i, meshqd, conf, out) for i in range(1, args.nodes + 1)]
        for node in nodes:
            node.mount()
        network.enter_hub()
        for node in nodes:
            node.start()
        if not wait_for("a first leader", time.monotonic() + 30, lambda: agreed_leader(nodes)):
            log("the cluster never elected a leader; see the node logs")
            return 2
        rec = Recorder(f"{out}/history.jsonl")
        rec.meta(seed=seed, nodes=args.nodes, duration=args.duration, rate=args.rate,
                 schedule=faults)
        rec.meta(queues=QUEUES)
        stop = threading.Event()
        rec.meta(workload="start")
        clients = start_clients(args.nodes, rec, seed, args.rate, stop, args.clients, args.clients)
        nemesis = Nemesis(faults, nodes, network, rec, stop)
        nemesis.start()
        end = time.monotonic() + args.duration
        while time.monotonic() < end:
            time.sleep(1)
            nemesis.supervise()         # notes deaths as they happen; restarts between faults
            if int(end - time.monotonic()) % 10 == 0:
                done = sum(1 for e in rec.events if e.get("phase") == "complete"
                           and e["result"] == "ok")
                log(f"t={rec.now():.0f}s {done} successful commands")
        stop.set()
        rec.meta(workload="stop")
        log("stopping clients, healing")
        for c in clients:
            c.join(timeout=15)
        nemesis.join(timeout=30)
        with nemesis.lock:
            nemesis.heal()
        notes = []
        if nemesis.error:
            notes.append(f"nemesis error: {nemesis.error}")
        log("draining through the leader")
        problem = drain(nodes, rec, time.monotonic() + ACK_TIMEOUT_MS / 1000 + 90)
        rec.meta(drain="incomplete" if problem else "complete")
        violations = checker.check(rec.events)
        if problem:
            violations.append({"property": "drain", "message": problem, "ops": []})
        for node in nodes:
            node.reap(rec.now())
            for t, code in node.deaths:
                sig = -code if code < 0 else None
                notes.append(f"node {node.i} exited on its own at t={t:.1f} "
                             f"({'signal ' + signal.Signals(sig).name if sig else 'status ' + str(code)})")
                if sig in FATAL_SIGNALS:
                    violations.append({"property": "crash", "ops": [],
                                       "message": f"node {node.i} died of {signal.Signals(sig).name}"
                                                  f" at t={t:.1f}"})
        meta = {"seed": seed, "nodes": args.nodes, "duration": args.duration, "rate": args.rate,
                "notes": notes + [f"replay: {replay}", f"output: {out}"]}
        text = report.summary(rec.events, violations, meta)
        with open(f"{out}/summary.txt", "w") as f:
            f.write(text + "\n")
        by_op = {}
        for e in rec.events:
            if "op" in e:
                by_op.setdefault(e["op"], []).append(e)
        with open(f"{out}/violations.json", "w") as f:   # each with its operations' events
            json.dump([dict(v, events=[e for o in v["ops"] for e in by_op.get(o, [])])
                       for v in violations], f, indent=1)
        with open(f"{out}/throughput.svg", "w") as f:
            f.write(report.svg(rec.events))
        print(text, flush=True)
        status = 1 if violations else 0
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        status = 130
    finally:
        cluster.close_shared()
        for node in nodes:
            node.stop()
        if rec:
            rec.close()
        network.leave_hub()
        net.remove_all()
        for node in nodes:
            node.unmount()
        try:
            os.unlink(cluster.PIDS)
        except FileNotFoundError:
            pass
    return status


if __name__ == "__main__":
    sys.exit(main())
