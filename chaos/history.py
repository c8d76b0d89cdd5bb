"""The chaos history: every client operation as an invoke and a completion.

One JSON object per line, written as it happens (flushed, so a killed run
still leaves a readable file):

  {"t": 1.234, "phase": "invoke",   "op": 7, "client": "p1", "node": 2, "f": "enqueue", "arg": "p1-7"}
  {"t": 1.301, "phase": "complete", "op": 7, "client": "p1", "node": 2, "f": "enqueue",
   "result": "ok", "reply": "OK 12 40"}
  {"t": 3.000, "phase": "nemesis",  "event": "start", "fault": "partition", "detail": "1,2 | 3"}
  {"t": 9.000, "phase": "meta",     "drain": "complete"}

`f` is one of hello, enqueue, dequeue, ack, nack (protocol 1) and put, take
(protocol 2). A put's `arg` is {"queue", "payload", "pri", "delay", "key"}
(pri, delay and key null when not sent); a take's is the queue list; a
NACK with a delay has {"id", "delay"}, a plain one the task id. The runner
writes the queues' delivery caps as a meta event
{"queues": {"poison": {"max_deliveries": 2, "dead_letter": "poison.dead"}}}.

`t` is seconds since the start of the run on one monotonic clock, so every
invoke and completion of every thread is ordered consistently. `result` is
`ok`, `err` (the command certainly did nothing) or `unknown` (it may or may
not have taken effect: a timeout, a closed connection, or an ERR that
docs/protocol.md calls of unknown outcome). `reply` is the raw reply line, or
null when none came. `classify` is the single place that decides which.
"""

import json
import threading
import time

# ERR codes after which the command certainly did not take effect.
DEFINITE_ERRORS = {"BADCMD", "BADARG", "TOOLARGE", "BUSY", "AUTH", "NOTFOUND"}


def classify(f, reply):
    """ok / err / unknown for a reply line (None: timeout or closed connection)."""
    if reply is None:
        return "unknown"
    word = reply.split(" ", 1)[0]
    if word == "ERR":
        code = reply.split(" ", 2)[1] if len(reply.split(" ")) > 1 else ""
        return "err" if code in DEFINITE_ERRORS else "unknown"
    if f in ("enqueue", "put") and word in ("OK", "QUEUED"):
        return "ok"
    if f == "dequeue" and word in ("TASK", "EMPTY"):
        return "ok"
    if f == "take" and word in ("JOB", "EMPTY"):
        return "ok"
    if f in ("ack", "nack") and word == "OK":
        return "ok"
    if f == "hello" and word == "HELLO":
        return "ok"
    if f == "status" and word == "STATUS":
        return "ok"
    return "unknown"  # a reply we do not understand proves nothing


def lamport_of(reply):
    """The Lamport stamp carried by a reply, or None. A `dup` answer carries
    the first task's stamp (docs/protocol.md), an old one by design: none."""
    if not reply:
        return None
    parts = reply.split(" ")
    if parts[0] == "OK" and parts[-1] == "dup":
        return None
    try:
        if parts[0] in ("OK", "QUEUED", "TASK", "JOB") and len(parts) >= 3:
            return int(parts[2])
        if parts[0] == "HELLO" and len(parts) >= 3:
            return int(parts[2])
    except ValueError:
        return None
    return None


class Recorder:
    """Appends events to history.jsonl from many threads; keeps them in memory too."""

    def __init__(self, path):
        self.start = time.monotonic()
        self.file = open(path, "w", encoding="utf-8")
        self.lock = threading.Lock()
        self.events = []
        self.next_op = 0

    def now(self):
        return round(time.monotonic() - self.start, 6)

    def _write(self, event):
        with self.lock:
            self.events.append(event)
            self.file.write(json.dumps(event, separators=(",", ":")) + "\n")
            self.file.flush()

    def invoke(self, client, node, f, arg=None):
        with self.lock:
            self.next_op += 1
            op = self.next_op
        self._write({"t": self.now(), "phase": "invoke", "op": op, "client": client,
                     "node": node, "f": f, "arg": arg})
        return op

    def complete(self, op, client, node, f, reply):
        self._write({"t": self.now(), "phase": "complete", "op": op, "client": client,
                     "node": node, "f": f, "result": classify(f, reply), "reply": reply})

    def nemesis(self, event, fault, detail=""):
        self._write({"t": self.now(), "phase": "nemesis", "event": event,
                     "fault": fault, "detail": detail})

    def meta(self, **fields):
        self._write(dict({"t": self.now(), "phase": "meta"}, **fields))

    def close(self):
        with self.lock:
            self.file.close()


def load(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
