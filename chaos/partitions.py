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
   no error; node 1 parks an ENQUEUE (QUEUED), delivered once healed;
3. cut one link (1-3): node 1 keeps following leader 3 over node 2 (no
   election anywhere) and its clients get OK.
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


def request(i, line, timeout=5.0):
    """One command on a fresh connection to node i: the reply line, or None."""
    return cluster.request(i, line, timeout)


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


def enqueue_ok(i, payload, seconds):
    """ENQUEUEs at node i until one gets OK; (reply, ms it took) or (None, ms)."""
    t0 = time.monotonic()
    got = until(seconds, lambda: (lambda r: r if r and r.startswith("OK ") else None)(
        request(i, f"ENQUEUE {payload}", timeout=3)))
    return got, int((time.monotonic() - t0) * 1000)


def drain_payloads(i):
    out = []
    while True:
        r = request(i, "DEQUEUE 500")
        if not r or not r.startswith("TASK "):
            return out
        out.append(r.split(" ", 3)[3])
        request(i, f"ACK {r.split()[1]}")


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
    finally:
        for n in nodes:
            n.stop()
        network.leave_hub()
        for n in nodes:
            n.unmount()
        net.remove_all()


def isolate_leader(network, nodes, d):
    before, _ = enqueue_ok(1, "before", 10)
    check(before is not None, "isolate the leader: an ENQUEUE got OK before the cut")
    network.apply(net.partition([3], [1, 2]))
    t0 = time.monotonic()
    down = until(10, lambda: (cluster.status(3) or {}).get("role") not in (None, "leader"), interval=0.02)
    check(down is not None, f"isolate the leader: node 3 stepped down {int((time.monotonic() - t0) * 1000)} ms after the cut")
    ok, _ = enqueue_ok(1, "during", 20)
    ms = int((time.monotonic() - t0) * 1000)
    check(ok is not None, f"isolate the leader: an ENQUEUE through node 1 got OK {ms} ms after the cut")
    check(until(10, agreed(nodes, [1, 2], 2)) is not None, "isolate the leader: nodes 1 and 2 follow node 2")
    stale = request(3, "ENQUEUE on-the-wrong-side", timeout=8)
    check(stale is None or not stale.startswith("OK "), f"isolate the leader: the cut-off old leader gives no OK ({stale})")
    check((cluster.status(3) or {}).get("role") != "leader", "isolate the leader: node 3 does not lead while cut off")
    network.heal()
    check(until(30, agreed(nodes, [1, 2, 3], 3)) is not None, "isolate the leader: healed, node 3 leads again")
    until(30, lambda: all((cluster.status(i) or {}).get("mailbox") == "0" for i in (1, 2, 3)))
    got = drain_payloads(3)
    check("before" in got and "during" in got, f"isolate the leader: the final leader holds both OK'd tasks ({sorted(set(got))})")
    check(got.count("before") == 1 and got.count("during") == 1, "isolate the leader: each once")


def partition_minority(network, nodes, d):
    network.apply(net.partition([1], [2, 3]))
    replies = []
    end = time.monotonic() + 3
    while time.monotonic() < end:
        replies.append(request(3, f"ENQUEUE m{len(replies)}"))
    errors = [r for r in replies if not (r or "").startswith("OK ")]
    check(not errors, f"partition a minority: the leader answered {len(replies)} ENQUEUEs, {len(errors)} not OK")
    parked = request(1, "ENQUEUE parked-on-1", timeout=10)
    check((parked or "").startswith("QUEUED 1-"), f"partition a minority: node 1 alone parks the ENQUEUE ({parked})")
    network.heal()
    check(until(30, lambda: (cluster.status(1) or {}).get("mailbox") == "0") is not None,
          "partition a minority: healed, node 1 delivered its mailbox")
    got = drain_payloads(3)
    check(got.count("parked-on-1") == 1, "partition a minority: the parked task applied exactly once")
    check(sum(1 for p in got if p.startswith("m")) == len(replies), "partition a minority: every OK'd task is held")


def cut_one_link(network, nodes, d):
    starts = [elections(n.log_path) for n in nodes]
    epoch = (cluster.status(1) or {}).get("epoch")
    network.apply({(1, 3), (3, 1)})
    ok = 0
    end = time.monotonic() + 4
    while time.monotonic() < end:
        r = request(1, f"ENQUEUE relay{ok}")
        ok += 1 if (r or "").startswith("OK ") else 0
    st = cluster.status(1) or {}
    check(ok > 10, f"cut one link: node 1's clients got {ok} OKs over the relay")
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
