"""The chaos checker: judges a history (see history.py) against meshq's promises.

Pure: a list of events in, a list of violations out; no I/O, no clock.

What is observed. A task's identity is the pair (task id, payload): ENQUEUE
or PUT `OK <id>` ties the producer's payload to an id, every `TASK <id>
<lamport> <payload>` a DEQUEUE returns, or `JOB <id> <lamport> <queue>
<deliveries> <payload>` a TAKE returns, ties them again. Producers make
every payload unique, so a payload names the one ENQUEUE or PUT that sent
it (a keyed PUT sent again after an unknown outcome is the same PUT: same
queue, options, key and payload). The final drain (all faults healed,
TAKE of every queue through the final leader until the leader's STATS show
nothing ready, delayed or leased, each task acked) is part of the history
like any other client.

The properties (numbers as in issue 11):
 1. every ENQUEUE answered OK is delivered at least once, unless acked (an
    ACK answered OK, or one of unknown outcome, for its id);
 2. no DEQUEUE invoked after an ACK for a task was answered OK returns
    that task;
 3. no task id carries two payloads, and no task carries a payload that no
    ENQUEUE sent;
 4. every ENQUEUE answered QUEUED is applied exactly once (exactly one task
    id carries its payload);
 5. no ENQUEUE is applied twice: one of unknown outcome appears under at
    most one task id, one answered OK only under the id it was told, one
    that certainly failed under none;
 6. the Lamport stamps each client sees, in the order it received them,
    never go back (a stamp below one it already saw);
 7. one task per key: every OK (new or `dup`) to a PUT with a key in a
    queue names the same task id, and the deliveries of that key's
    payloads carry at most one task id;
 8. dead letters: no JOB from a queue with a delivery count above its
    max_deliveries (from the runner's "queues" meta event);
 9. delays: no delivery of a task put with delay=D completes before the
    PUT was invoked + D, and none by a TAKE/DEQUEUE invoked after a
    `NACK <id> <D>` was answered OK completes before that NACK was invoked
    + D (less DELAY_TOLERANCE each). The invoke time is the sound bound: the
    leader starts the delay when it takes the command, between its invoke
    and its reply (a reply may come late, after a failover).
Properties 1 and 4's "at least once" can only be judged when the drain
completed; otherwise they are skipped and the runner reports the drain
itself as a failure.
"""

from collections import defaultdict

from history import lamport_of

# Seconds a delayed task may come before its due time on the history's
# clock. Every node and the runner share one host clock, so the cluster
# clock (the leader's wall clock, carried across failovers by Cristian
# offsets) differs from it only by those offsets' error: at most half a
# round trip on the namespaces' veth links (well under 1 ms), summed over
# the failovers of a run.
DELAY_TOLERANCE = 0.1


def _ops(events):
    """op id -> {invoke fields..., 'complete': completion event or None}."""
    ops = {}
    for e in events:
        if e.get("phase") == "invoke":
            ops[e["op"]] = dict(e, complete=None)
        elif e.get("phase") == "complete" and e["op"] in ops:
            ops[e["op"]]["complete"] = e
    return ops


def _result(op):
    return op["complete"]["result"] if op["complete"] else "unknown"


def _reply(op):
    return op["complete"]["reply"] if op["complete"] else None


def _parse_task(reply):
    """(id, payload) from `TASK <id> <lamport> <payload>`, else None."""
    if not reply or not reply.startswith("TASK "):
        return None
    parts = reply.split(" ", 3)
    if len(parts) < 3:
        return None
    return int(parts[1]), (parts[3] if len(parts) > 3 else "")


def _parse_job(reply):
    """(id, queue, deliveries, payload) from `JOB <id> <lamport> <queue>
    <deliveries> <payload>`, else None."""
    if not reply or not reply.startswith("JOB "):
        return None
    parts = reply.split(" ", 5)
    if len(parts) < 5:
        return None
    return int(parts[1]), parts[3], int(parts[4]), (parts[5] if len(parts) > 5 else "")


def _payload(op):
    """What an ENQUEUE or PUT sent."""
    return op["arg"]["payload"] if op["f"] == "put" else op["arg"]


def _violation(prop, msg, *ops):
    return {"property": prop, "message": msg, "ops": [o["op"] for o in ops if o]}


def check(events):
    ops = _ops(events)
    drained = any(e.get("phase") == "meta" and e.get("drain") == "complete" for e in events)
    violations = []

    enqueues = [o for o in ops.values() if o["f"] in ("enqueue", "put")]
    sent_payloads = {_payload(o) for o in enqueues}
    deliveries = []                      # (task id, payload, dequeue or take op)
    jobs = []                            # (task id, queue, deliveries, take op)
    for o in ops.values():
        if o["f"] == "dequeue":
            task = _parse_task(_reply(o))
            if task:
                deliveries.append((task[0], task[1], o))
        elif o["f"] == "take":
            job = _parse_job(_reply(o))
            if job:
                deliveries.append((job[0], job[3], o))
                jobs.append((job[0], job[1], job[2], o))
    delivered_ids = {d[0] for d in deliveries}

    id_payloads = defaultdict(set)       # task id -> payloads seen with it
    payload_ids = defaultdict(set)       # payload -> task ids seen with it
    for tid, payload, _ in deliveries:
        id_payloads[tid].add(payload)
        payload_ids[payload].add(tid)
    told_id = {}                         # enqueue op -> id in its OK
    for o in enqueues:
        reply = _reply(o)
        if reply and reply.startswith("OK "):
            tid = int(reply.split(" ")[1])
            told_id[o["op"]] = tid
            id_payloads[tid].add(_payload(o))
            payload_ids[_payload(o)].add(tid)
    # payload -> results of the operations that sent it (several: a keyed retry)
    payload_results = defaultdict(set)
    for o in enqueues:
        payload_results[_payload(o)].add(_result(o))

    acks = defaultdict(list)             # task id -> ack ops
    for o in ops.values():
        if o["f"] == "ack" and o["arg"] is not None:
            acks[int(o["arg"])].append(o)

    # 1. acknowledged enqueues are delivered unless acked
    if drained:
        for o in enqueues:
            tid = told_id.get(o["op"])
            if tid is None or tid in delivered_ids:
                continue
            if any(_result(a) in ("ok", "unknown") for a in acks[tid]):
                continue
            violations.append(_violation(
                1, f"task {tid} ({_payload(o)!r}) was answered OK at t={o['complete']['t']} "
                   f"and never delivered", o))

    # 2. nothing delivered after its ACK was answered OK
    for tid, ack_ops in acks.items():
        done = [a for a in ack_ops if _result(a) == "ok"]
        if not done:
            continue
        first = min(done, key=lambda a: a["complete"]["t"])
        later = sorted((d for dtid, _, d in deliveries
                        if dtid == tid and d["t"] > first["complete"]["t"]), key=lambda d: d["t"])
        if later:
            violations.append(_violation(
                2, f"task {tid} was acked OK at t={first['complete']['t']} and delivered "
                   f"again {len(later)} time(s), first by a DEQUEUE invoked at "
                   f"t={later[0]['t']} on node {later[0]['node']}", first, later[0]))

    # 3. one payload per task id, and only payloads someone sent
    for tid, payloads in sorted(id_payloads.items()):
        if len(payloads) > 1:
            violations.append(_violation(3, f"task {tid} carries {len(payloads)} payloads: "
                                            f"{sorted(payloads)!r}"))
    for tid, payload, d in deliveries:
        if payload not in sent_payloads:
            violations.append(_violation(3, f"task {tid} carries {payload!r}, which no "
                                            f"ENQUEUE sent", d))

    # 4. QUEUED enqueues applied exactly once
    for o in enqueues:
        reply = _reply(o)
        if not (reply and reply.startswith("QUEUED ")):
            continue
        n = len(payload_ids[_payload(o)])
        if n > 1:
            violations.append(_violation(4, f"parked enqueue {_payload(o)!r} ({reply}) was "
                                            f"applied as tasks {sorted(payload_ids[_payload(o)])}", o))
        elif n == 0 and drained:
            violations.append(_violation(4, f"parked enqueue {_payload(o)!r} ({reply}) was "
                                            f"never applied", o))

    # 5. no enqueue applied twice (or at all, when it certainly failed)
    for o in enqueues:
        ids = payload_ids[_payload(o)]
        result = _result(o)
        if result == "unknown" and len(ids) > 1:
            violations.append(_violation(5, f"enqueue {_payload(o)!r} of unknown outcome "
                                            f"({_reply(o)}) appears as tasks {sorted(ids)}", o))
        elif result == "err" and ids and payload_results[_payload(o)] == {"err"}:
            violations.append(_violation(5, f"enqueue {_payload(o)!r} failed ({_reply(o)}) "
                                            f"yet appears as tasks {sorted(ids)}", o))
        elif o["op"] in told_id and len(ids) > 1:
            violations.append(_violation(5, f"enqueue {_payload(o)!r} answered {_reply(o)} "
                                            f"appears as tasks {sorted(ids)}", o))

    # 6. Lamport stamps per client never go back
    by_client = defaultdict(list)
    for o in ops.values():
        stamp = lamport_of(_reply(o))
        if stamp is not None:
            by_client[o["client"]].append((o["complete"]["t"], stamp, o))
    for client, seen in by_client.items():
        seen.sort(key=lambda s: s[0])
        high, high_op = None, None
        for _, stamp, o in seen:
            if high is not None and stamp < high:
                violations.append(_violation(
                    6, f"client {client} saw Lamport {stamp} ({_reply(o)!r} from node "
                       f"{o['node']}) after {high}", high_op, o))
            if high is None or stamp > high:
                high, high_op = stamp, o

    puts = [o for o in enqueues if o["f"] == "put"]

    # 7. one task per key
    key_puts = defaultdict(list)         # (queue, key) -> put ops
    for o in puts:
        if o["arg"].get("key"):
            key_puts[(o["arg"]["queue"], o["arg"]["key"])].append(o)
    for (queue, key), key_ops in sorted(key_puts.items()):
        told = {told_id[o["op"]]: o for o in key_ops if o["op"] in told_id}
        if len(told) > 1:
            violations.append(_violation(
                7, f"PUTs with key {key!r} in {queue!r} were answered with tasks {sorted(told)}",
                *told.values()))
        payloads = {_payload(o) for o in key_ops}
        got = {}
        for tid, payload, d in deliveries:
            if payload in payloads:
                got.setdefault(tid, d)
        if len(got) > 1:
            violations.append(_violation(
                7, f"key {key!r} in {queue!r} was delivered as tasks {sorted(got)}", *got.values()))

    # 8. no JOB past its queue's delivery cap
    caps = {}
    for e in events:
        if e.get("phase") == "meta" and "queues" in e:
            caps.update(e["queues"])
    for tid, queue, n, o in jobs:
        cap = (caps.get(queue) or {}).get("max_deliveries", 0)
        if cap and n > cap:
            violations.append(_violation(
                8, f"task {tid} was leased from {queue!r} for delivery {n}, past its "
                   f"max_deliveries {cap} (TAKE invoked at t={o['t']} on node {o['node']})", o))

    # 9. delays: nothing delivered before it is due
    due = {}                             # payload -> (earliest due time, put op)
    for o in puts:
        delay = o["arg"].get("delay") or 0
        if delay > 0:
            at = o["t"] + delay / 1000
            if _payload(o) not in due or at < due[_payload(o)][0]:
                due[_payload(o)] = (at, o)
    for tid, payload, d in deliveries:
        if payload in due and d["complete"]["t"] < due[payload][0] - DELAY_TOLERANCE:
            at, put = due[payload]
            violations.append(_violation(
                9, f"task {tid} ({payload!r}, delay={put['arg']['delay']}) was delivered at "
                   f"t={d['complete']['t']}, {at - d['complete']['t']:.3f}s before it was due "
                   f"(PUT invoked at t={put['t']})", put, d))
    for o in ops.values():
        if o["f"] != "nack" or not isinstance(o["arg"], dict) or _result(o) != "ok":
            continue
        tid, at = int(o["arg"]["id"]), o["t"] + o["arg"]["delay"] / 1000
        for dtid, _, d in deliveries:
            if dtid == tid and d["t"] > o["complete"]["t"] and d["complete"]["t"] < at - DELAY_TOLERANCE:
                violations.append(_violation(
                    9, f"task {tid}, NACKed with delay {o['arg']['delay']} at t={o['t']}, was "
                       f"delivered again at t={d['complete']['t']}, {at - d['complete']['t']:.3f}s "
                       f"early", o, d))
    return violations
