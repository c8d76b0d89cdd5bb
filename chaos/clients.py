"""The chaos workload: producers and consumers on the line protocol.

Each client is a thread with one connection at a time to a random node; it
says HELLO with its Lamport clock on every new connection, sends one command
at a time and records each as invoke + completion (history.py). A timeout or
a closed connection is an unknown outcome: the client drops that connection
(a late reply must never be read as the answer to the next command) and
reconnects, to a random node. Clients also move to another node every few
dozen commands, so every node serves and relays.

Producers send unique payloads (`<client>-<n>`): half as ENQUEUE, half as
protocol 2 `PUT` to `work` (or, one in four, to `poison`, whose
max_deliveries is small), each option by chance: `pri=` 0-3, `delay=`
200-3000 ms, `key=<client>-k<n>`. A keyed PUT whose outcome is unknown is
sent again, the same line (queue, options, key and payload), up to
KEYED_RETRIES times: the cluster must make one task of it.

Consumers DEQUEUE (half the time) or `TAKE work,poison` or `TAKE
poison,work` (JOB replies), with
a wait, then ACK (60%), NACK (10%), NACK with a delay of 100-1500 ms (10%),
vanish without acking (10%: the connection is closed and the lease must
expire), or forget the task but keep the connection (10%). A task from
`poison` is never acked (it goes to `poison.dead`). The pace is RATE
commands per second over all clients, with exponential gaps.
"""

import random
import socket
import threading
import time

from cluster import CLIENT_PORT
from history import classify, lamport_of
from net import node_ip

CALL_TIMEOUT = 8.0        # > commit_timeout_ms waiting for a leader + a round
DEQUEUE_WAIT_MS = 500
KEYED_RETRIES = 3
# The protocol 2 queues (chaos/cluster.py configures them) and what the drain takes.
WORK_QUEUES = ["work", "poison"]
POISON_MAX_DELIVERIES = 2
QUEUES = {"poison": {"max_deliveries": POISON_MAX_DELIVERIES, "dead_letter": "poison.dead"}}
DRAIN_QUEUES = ["default", "work", "poison", "poison.dead"]


class Connection:
    def __init__(self, node, timeout=1.0):
        self.node = node
        self.sock = socket.create_connection((node_ip(node), CLIENT_PORT), timeout=timeout)
        self.buf = b""
        self.error = None             # why the last call got no reply

    def call(self, line, timeout):
        """The reply line, or None (timeout / closed: the caller must drop the
        connection; `error` says which)."""
        deadline = time.monotonic() + timeout
        try:
            self.sock.sendall(line.encode() + b"\n")
            while b"\n" not in self.buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.error = f"no reply from node {self.node} in {timeout:g} s to {line[:40]!r}"
                    return None
                self.sock.settimeout(left)
                chunk = self.sock.recv(65536)
                if not chunk:
                    self.error = f"node {self.node} closed the connection"
                    return None
                self.buf += chunk
        except OSError as e:
            self.error = f"node {self.node}: {e.strerror or e}"
            return None
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode(errors="replace")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Client(threading.Thread):
    def __init__(self, name, role, n_nodes, recorder, seed, rate, stop_event):
        super().__init__(name=name, daemon=True)
        self.cname = name
        self.role = role
        self.nodes = list(range(1, n_nodes + 1))
        self.rec = recorder
        self.rng = random.Random(seed)
        self.rate = rate
        self.stop_event = stop_event
        self.conn = None
        self.lamport = 0
        self.sent = 0
        self.ops_on_conn = 0
        self.last_error = None        # why the last connection or call failed
        self.retry = None             # (line, arg, tries) of a keyed PUT to send again

    # -- one recorded command -------------------------------------------------
    def call(self, f, line, arg=None, timeout=CALL_TIMEOUT):
        node = self.conn.node
        op = self.rec.invoke(self.cname, node, f, arg)
        reply = self.conn.call(line, timeout)
        self.rec.complete(op, self.cname, node, f, reply)
        stamp = lamport_of(reply)
        if stamp is not None:
            self.lamport = max(self.lamport, stamp) + 1
        if reply is None:
            self.last_error = self.conn.error
            self.drop()
        self.ops_on_conn += 1
        return reply

    def drop(self):
        if self.conn:
            self.conn.close()
        self.conn = None

    def connect(self):
        """A new connection to a random node, greeted with HELLO; False if none."""
        node = self.rng.choice(self.nodes)
        try:
            self.conn = Connection(node)
        except OSError as e:
            self.last_error = f"connect to node {node}: {e.strerror or e}"
            self.conn = None
            return False
        self.ops_on_conn = 0
        self.lamport += 1
        reply = self.call("hello", f"HELLO {self.cname} {self.lamport}", self.cname, timeout=3.0)
        return reply is not None and reply.startswith("HELLO ")

    def pace(self):
        self.stop_event.wait(self.rng.expovariate(self.rate))

    # -- the loops ------------------------------------------------------------
    def run(self):
        n = 0
        while not self.stop_event.is_set():
            if self.conn is None or self.ops_on_conn > self.rng.randint(20, 60):
                self.drop()
                if not self.connect():
                    self.drop()
                    self.stop_event.wait(self.rng.uniform(0.1, 0.3))
                    continue
            if self.role == "producer":
                if self.retry:
                    self.put_again()
                else:
                    n += 1
                    self.produce(n)
            else:
                self.consume()
            self.pace()
        self.drop()

    def produce(self, n):
        payload = f"{self.cname}-{n}"
        if self.rng.random() < 0.5:
            self.call("enqueue", f"ENQUEUE {payload}", payload)
            return
        arg = {"queue": "poison" if self.rng.random() < 0.25 else "work", "payload": payload,
               "pri": self.rng.randint(0, 3) if self.rng.random() < 0.5 else None,
               "delay": self.rng.randint(200, 3000) if self.rng.random() < 0.3 else None,
               "key": f"{self.cname}-k{n}" if self.rng.random() < 0.5 else None}
        opts = ",".join(f"{k}={arg[k]}" for k in ("pri", "delay", "key") if arg[k] is not None)
        line = f"PUT {arg['queue']} {opts or '-'} {payload}"
        self.put(line, arg, KEYED_RETRIES)

    def put(self, line, arg, tries):
        reply = self.call("put", line, arg)
        self.retry = None
        if arg["key"] and tries > 0 and classify("put", reply) == "unknown":
            self.retry = (line, arg, tries - 1)

    def put_again(self):
        line, arg, tries = self.retry
        self.put(line, arg, tries)

    def consume(self):
        if self.rng.random() < 0.5:
            reply = self.call("dequeue", f"DEQUEUE {DEQUEUE_WAIT_MS}",
                              timeout=CALL_TIMEOUT + DEQUEUE_WAIT_MS / 1000)
            if not reply or not reply.startswith("TASK "):
                return
            queue = "default"
        else:
            # Either order: `work` first alone would starve `poison` of consumers.
            queues = ",".join(self.rng.sample(WORK_QUEUES, len(WORK_QUEUES)))
            reply = self.call("take", f"TAKE {queues} {DEQUEUE_WAIT_MS}", queues,
                              timeout=CALL_TIMEOUT + DEQUEUE_WAIT_MS / 1000)
            if not reply or not reply.startswith("JOB "):
                return
            queue = reply.split(" ")[3]
        tid = reply.split(" ")[1]
        roll = self.rng.random()
        if self.conn is None:
            return
        if roll < 0.6 and queue != "poison":
            self.pace()
            if self.conn:
                self.call("ack", f"ACK {tid}", tid)
        elif roll < 0.7:
            self.call("nack", f"NACK {tid}", tid)
        elif roll < 0.8 or (roll < 0.6 and queue == "poison"):
            delay = self.rng.randint(100, 1500)
            self.call("nack", f"NACK {tid} {delay}", {"id": tid, "delay": delay})
        elif roll < 0.9:
            self.drop()                # vanish: the lease must expire
        # else: forget the task, keep the connection; the lease expires too


def start_clients(n_nodes, recorder, seed, rate, stop_event, producers, consumers):
    clients = []
    per = max(rate / (producers + consumers), 0.1)
    for k in range(producers):
        clients.append(Client(f"p{k + 1}", "producer", n_nodes, recorder,
                              f"{seed}-p{k}", per, stop_event))
    for k in range(consumers):
        clients.append(Client(f"c{k + 1}", "consumer", n_nodes, recorder,
                              f"{seed}-c{k}", per, stop_event))
    for c in clients:
        c.start()
    return clients
