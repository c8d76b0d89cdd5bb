"""Silent network faults, scripted: three real meshqd nodes in network
namespaces, packets dropped (never rejected) with nftables, and what clients
see. docs/replication.md: a peer heard from by no frame for leader_timeout_ms is
down, whatever its TCP connections say.

    python3 chaos/partitions.py [--meshqd .build/release/meshqd]

Scenarios, each on a fresh cluster (leader 3, default timings):
1. isolate the leader: nodes 1 and 2 elect node 2 and commit an ENQUEUE;
   the old leader answers no OK while cut off; healed, every OK'd task is
   held by the final leader;
2. partition a minority (node 1 alone): the leader keeps answering OK with
   no error (at most 600 ENQUEUEs, 8 pipelined at a time, spread over 3 s);
   node 1 parks an ENQUEUE (QUEUED), delivered once healed;
3. cut one link (1-3): node 1 keeps following leader 3 over node 2 (no
   election anywhere) and its clients get OK (at most 600 over 4 s).

Every client keeps one connection per node (opened again only after a
timeout or a close), STATUS polls share one per node, and a drain DEQUEUEs
and ACKs pipelined on one connection until EMPTY; a drain that stops for
any other reason fails its check with that reason. Each scenario ends by
counting the TIME_WAIT sockets its connections left (at most 200).
Prints one line per check and exits 1 when any fails. Needs root.
"""

import argparse
import fcntl
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster  # noqa: E402
import net  # noqa: E402

FAILED = []


def check(ok, what):
    print(f"partitions: {'ok  ' if ok else 'FAIL'} {what}", flush=True)
    if not ok:
        FAILED.append(what)


# Timed windows are bounded by count too, so their volume does not grow with
# the machine's speed: at most WINDOW_MAX commands, sent PIPELINE at a time
# at most every WINDOW_SECONDS * PIPELINE / WINDOW_MAX seconds, so they span
# the whole window on any machine fast enough to keep up.
PIPELINE = 8
WINDOW_MAX = 600
# Each scenario opens a few connections (one per node, and again after a
# timeout): far fewer TIME_WAIT sockets than this means none is per command.
TIME_WAIT_MAX = 200


class Conn:
    """A client's one connection to node i, opened again only after a failure
    (a timeout or a close: a late reply must never be read as the answer to
    the next command). `error` holds the last failure."""

    def __init__(self, i):
        self.i = i
        self.line = None
        self.error = None

    def pipeline(self, lines, timeout=5.0):
        """The replies to `lines` sent together, or None (the reason in `error`)."""
        try:
            if self.line is None or not self.line.ok():
                self.line = cluster.Line(self.i, timeout)
            return self.line.pipeline(lines, timeout)
        except cluster.LineError as e:
            self.line = None
            self.error = str(e)
            return None

    def call(self, line, timeout=5.0):
        replies = self.pipeline([line], timeout)
        return replies[0] if replies else None

    def close(self):
        if self.line is not None:
            self.line.close()
        self.line = None


def until(seconds, probe, interval=0.1):
    """The first truthy probe() within `seconds`, or None."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        got = probe()
        if got:
            return got
        time.sleep(interval)
    return None


def agreed(nodes, ids, leader):
    def probe():
        sts = [cluster.status(i) for i in ids]
        return all(st and st.get("leader") == str(leader) for st in sts) and \
            (cluster.status(leader) or {}).get("role") == "leader"
    return probe


def elections(node_log):
    with open(node_log) as f:
        return f.read().count("event=election_start")


def enqueue_ok(conn, payload, seconds):
    """ENQUEUEs on conn until one gets OK; (reply, ms it took) or (None, ms)."""
    t0 = time.monotonic()
    got = until(seconds, lambda: (lambda r: r if r and r.startswith("OK ") else None)(
        conn.call(f"ENQUEUE {payload}", timeout=3)))
    return got, int((time.monotonic() - t0) * 1000)


def paced_enqueues(conn, prefix, seconds):
    """ENQUEUE <prefix><n> on conn for `seconds`, PIPELINE at a time, at most
    WINDOW_MAX in all: (payload, reply) pairs, reply None where the connection
    failed (conn.error says why)."""
    out = []
    gap = seconds * PIPELINE / WINDOW_MAX
    end = time.monotonic() + seconds
    while time.monotonic() < end and len(out) < WINDOW_MAX:
        tick = time.monotonic()
        payloads = [f"{prefix}{len(out) + k}" for k in range(min(PIPELINE, WINDOW_MAX - len(out)))]
        replies = conn.pipeline([f"ENQUEUE {p}" for p in payloads]) or [None] * len(payloads)
        out += zip(payloads, replies)
        time.sleep(max(0.0, tick + gap - time.monotonic()))   # the rate cap, not a wait for a condition
    return out


class DrainError(Exception):
    pass


def drain_payloads(i, window=64):
    """DEQUEUEs and ACKs every ready task at node i on one connection, `window`
    commands at a time: the payloads. It ends only on EMPTY (confirmed by a
    DEQUEUE that waits 500 ms); anything else (refused, timeout, closed, an
    unexpected reply) raises DrainError with the reason and what it had."""
    out = []
    try:
        line = cluster.Line(i, timeout=10)
    except cluster.LineError as e:
        raise DrainError(str(e), out) from None
    try:
        while True:
            replies = line.pipeline(["DEQUEUE"] * window, timeout=30)
            tasks = [r.split(" ", 3) for r in replies if r.startswith("TASK ")]
            bad = [r for r in replies if not r.startswith("TASK ") and r != "EMPTY"]
            if tasks:
                acks = line.pipeline([f"ACK {t[1]}" for t in tasks], timeout=30)
                out += [t[3] if len(t) == 4 else "" for t in tasks]
                bad += [a for a in acks if not a.startswith("OK ")]
            if bad:
                raise DrainError(f"node {i} answered {bad[0]!r}", out)
            if len(tasks) == window:
                continue
            last = line.call("DEQUEUE 500", timeout=10)
            if last == "EMPTY":
                return out
            if not last.startswith("TASK "):
                raise DrainError(f"node {i} answered {last!r}", out)
            t = last.split(" ", 3)
            ack = line.call(f"ACK {t[1]}", timeout=10)
            out.append(t[3] if len(t) == 4 else "")
            if not ack.startswith("OK "):
                raise DrainError(f"node {i} answered {ack!r} to ACK {t[1]}", out)
    except cluster.LineError as e:
        raise DrainError(str(e), out) from None
    finally:
        line.close()


def drained(i, what):
    """drain_payloads(i), failing the check `what` loudly with the reason
    when the drain ends on anything but EMPTY; the payloads it got."""
    try:
        got = drain_payloads(i)
    except DrainError as e:
        reason, got = e.args
        check(False, f"{what}: the drain at node {i} stopped after {len(got)} tasks, not on EMPTY: {reason}")
        return got
    check(True, f"{what}: drained {len(got)} tasks at node {i}, ending on EMPTY")
    return got


def scenario(name, meshqd, out, body):
    print(f"partitions: --- {name}", flush=True)
    network = net.Network(3)
    nodes = []
    try:
        cluster.clean_stale()
        net.remove_all()
        network.setup()
        conf = f"{cluster.ROOT}/meshq.conf"
        with open(conf, "w") as f:
            f.write(cluster.config_text(3, 30_000))
        d = os.path.join(out, name.replace(" ", "-"))
        os.makedirs(d, exist_ok=True)
        nodes = [cluster.Node(i, meshqd, conf, d) for i in (1, 2, 3)]
        for n in nodes:
            n.mount()
        network.enter_hub()
        for n in nodes:
            n.start()
        if not until(30, agreed(nodes, [1, 2, 3], 3)):
            check(False, f"{name}: the cluster agreed on leader 3 at start")
            return
        body(network, nodes, d)
        cluster.close_shared()
        tw = cluster.time_wait_sockets()
        check(tw <= TIME_WAIT_MAX, f"{name}: {tw} TIME_WAIT sockets in the clients' namespace "
                                   f"(at most {TIME_WAIT_MAX}: connections are kept, not one per command)")
    finally:
        cluster.close_shared()
        for n in nodes:
            n.stop()
        network.leave_hub()
        for n in nodes:
            n.unmount()
        net.remove_all()


def isolate_leader(network, nodes, d):
    at1, at3 = Conn(1), Conn(3)
    before, _ = enqueue_ok(at1, "before", 10)
    check(before is not None, "isolate the leader: an ENQUEUE got OK before the cut")
    network.apply(net.partition([3], [1, 2]))
    t0 = time.monotonic()
    down = until(10, lambda: (cluster.status(3) or {}).get("role") not in (None, "leader"), interval=0.02)
    check(down is not None, f"isolate the leader: node 3 stepped down {int((time.monotonic() - t0) * 1000)} ms after the cut")
    ok, _ = enqueue_ok(at1, "during", 20)
    ms = int((time.monotonic() - t0) * 1000)
    check(ok is not None, f"isolate the leader: an ENQUEUE through node 1 got OK {ms} ms after the cut")
    check(until(10, agreed(nodes, [1, 2], 2)) is not None, "isolate the leader: nodes 1 and 2 follow node 2")
    stale = at3.call("ENQUEUE on-the-wrong-side", timeout=8)
    check(stale is None or not stale.startswith("OK "), f"isolate the leader: the cut-off old leader gives no OK ({stale})")
    check((cluster.status(3) or {}).get("role") != "leader", "isolate the leader: node 3 does not lead while cut off")
    network.heal()
    check(until(30, agreed(nodes, [1, 2, 3], 3)) is not None, "isolate the leader: healed, node 3 leads again")
    until(30, lambda: all((cluster.status(i) or {}).get("mailbox") == "0" for i in (1, 2, 3)))
    at1.close()
    at3.close()
    got = drained(3, "isolate the leader")
    check("before" in got and "during" in got, f"isolate the leader: the final leader holds both OK'd tasks ({sorted(set(got))})")
    check(got.count("before") == 1 and got.count("during") == 1, "isolate the leader: each once")


def partition_minority(network, nodes, d):
    network.apply(net.partition([1], [2, 3]))
    at3 = Conn(3)
    sent = paced_enqueues(at3, "m", 3)
    ok = [p for p, r in sent if (r or "").startswith("OK ")]
    errors = [r for p, r in sent if not (r or "").startswith("OK ")]
    why = f", first: {errors[0] or at3.error}" if errors else ""
    check(not errors, f"partition a minority: the leader answered {len(sent)} ENQUEUEs in 3 s, "
                      f"{len(errors)} not OK{why}")
    at3.close()
    at1 = Conn(1)
    parked = at1.call("ENQUEUE parked-on-1", timeout=10)
    check((parked or "").startswith("QUEUED 1-"),
          f"partition a minority: node 1 alone parks the ENQUEUE ({parked or at1.error})")
    at1.close()
    network.heal()
    check(until(30, lambda: (cluster.status(1) or {}).get("mailbox") == "0") is not None,
          "partition a minority: healed, node 1 delivered its mailbox")
    got = drained(3, "partition a minority")
    check(got.count("parked-on-1") == 1,
          f"partition a minority: the parked task applied exactly once ({got.count('parked-on-1')} times)")
    held = {p: 0 for p in ok}
    for p in got:
        if p in held:
            held[p] += 1
    missing = [p for p, n in held.items() if n == 0]
    twice = [p for p, n in held.items() if n > 1]
    check(not missing and not twice, f"partition a minority: every OK'd task is held once "
                                     f"({len(ok)} OK'd, {len(missing)} missing, {len(twice)} twice)")


def cut_one_link(network, nodes, d):
    starts = [elections(n.log_path) for n in nodes]
    epoch = (cluster.status(1) or {}).get("epoch")
    network.apply({(1, 3), (3, 1)})
    at1 = Conn(1)
    sent = paced_enqueues(at1, "relay", 4)
    ok = sum(1 for _, r in sent if (r or "").startswith("OK "))
    other = next((r or at1.error for _, r in sent if not (r or "").startswith("OK ")), None)
    at1.close()
    st = cluster.status(1) or {}
    check(ok > 10, f"cut one link: node 1's clients got {ok} OKs over the relay "
                   f"({len(sent)} sent{', first other reply: ' + other if other else ''})")
    check(st.get("leader") == "3" and st.get("epoch") == epoch, f"cut one link: node 1 still follows 3 in epoch {epoch} ({st.get('leader')}, {st.get('epoch')})")
    check([elections(n.log_path) for n in nodes] == starts, "cut one link: no election anywhere")
    network.heal()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--meshqd", default=".build/release/meshqd")
    ap.add_argument("--out", default="chaos-out/partitions")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("partitions: skipped, needs root (network namespaces, nftables)")
        return 0
    meshqd = os.path.abspath(args.meshqd)
    out = os.path.abspath(args.out)
    # One user of the namespaces and /run/meshq-chaos at a time (make chaos takes it too).
    lock = open("/run/meshq-chaos.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    os.makedirs(out, exist_ok=True)
    scenario("isolate the leader", meshqd, out, isolate_leader)
    scenario("partition a minority", meshqd, out, partition_minority)
    scenario("cut one link", meshqd, out, cut_one_link)
    print(f"partitions: {len(FAILED)} failed" if FAILED else "partitions: all checks passed", flush=True)
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
