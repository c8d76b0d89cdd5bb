"""The chaos checker: judges a history (see history.py) against meshq's promises.

Pure: a list of events in, a list of violations out; no I/O, no clock.

What is observed. A task's identity is the pair (task id, payload): ENQUEUE
`OK <id>` ties the producer's payload to an id, every `TASK <id> <lamport>
<payload>` a DEQUEUE returns ties them again. Producers make every payload
unique, so a payload names the one ENQUEUE that sent it. The final drain
(all faults healed, DEQUEUE through the final leader until the queue is
empty, each task acked) is part of the history like any other client.

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
    never go back (a stamp below one it already saw).
Properties 1 and 4's "at least once" can only be judged when the drain
completed; otherwise they are skipped and the runner reports the drain
itself as a failure.
"""

from collections import defaultdict

from history import lamport_of


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


def _violation(prop, msg, *ops):
    return {"property": prop, "message": msg, "ops": [o["op"] for o in ops if o]}


def check(events):
    ops = _ops(events)
    drained = any(e.get("phase") == "meta" and e.get("drain") == "complete" for e in events)
    violations = []

    enqueues = [o for o in ops.values() if o["f"] == "enqueue"]
    sent_payloads = {o["arg"] for o in enqueues}
    deliveries = []                      # (task id, payload, dequeue op)
    for o in ops.values():
        if o["f"] == "dequeue":
            task = _parse_task(_reply(o))
            if task:
                deliveries.append((task[0], task[1], o))
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
            id_payloads[tid].add(o["arg"])
            payload_ids[o["arg"]].add(tid)

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
                1, f"task {tid} ({o['arg']!r}) was answered OK at t={o['complete']['t']} "
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
        n = len(payload_ids[o["arg"]])
        if n > 1:
            violations.append(_violation(4, f"parked enqueue {o['arg']!r} ({reply}) was "
                                            f"applied as tasks {sorted(payload_ids[o['arg']])}", o))
        elif n == 0 and drained:
            violations.append(_violation(4, f"parked enqueue {o['arg']!r} ({reply}) was "
                                            f"never applied", o))

    # 5. no enqueue applied twice (or at all, when it certainly failed)
    for o in enqueues:
        ids = payload_ids[o["arg"]]
        result = _result(o)
        if result == "unknown" and len(ids) > 1:
            violations.append(_violation(5, f"enqueue {o['arg']!r} of unknown outcome "
                                            f"({_reply(o)}) appears as tasks {sorted(ids)}", o))
        elif result == "err" and ids:
            violations.append(_violation(5, f"enqueue {o['arg']!r} failed ({_reply(o)}) "
                                            f"yet appears as tasks {sorted(ids)}", o))
        elif o["op"] in told_id and len(ids) > 1:
            violations.append(_violation(5, f"enqueue {o['arg']!r} answered {_reply(o)} "
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
    return violations
