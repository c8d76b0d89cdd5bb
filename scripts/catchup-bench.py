#!/usr/bin/env python3
"""Catch-up throughput: how fast a follower that missed GiB of tasks catches up.

Starts three meshqd on loopback (fsync on), kills follower 1 with SIGKILL,
enqueues --gib GiB of tasks at the leader (node 3), restarts node 1 and
times it from the restart until its STATUS commit reaches the leader's.
Prints MB/s (10^6 bytes of payload per second), whether the leader sent
entries or a chunked snapshot, the restart's own share (replay, PONG), and
node 1's CPU time (its own clock: on a CPU, and waiting for one; the
machine's 2 cores may be shared with other work).

    scripts/catchup-bench.py [--meshqd .build/release/meshqd] [--gib 1]
                             [--payload-bytes 1048576]

With 1 MiB payloads 1 GiB is about 1,000 entries, inside the leader's
in-memory window (100,000 entries): the follower gets entries. With
--payload-bytes 8192 it is about 131,000 entries, past the window: the
follower gets one chunked snapshot.
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Line:
    def __init__(self, port, timeout=60):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.f = self.s.makefile("rb")

    def request(self, line):
        self.s.sendall(line + b"\n")
        return self.f.readline().rstrip(b"\n").decode()

    def close(self):
        self.s.close()


_status_lines = {}


def status(port):
    """STATUS on one kept connection per port (the waits poll it every 10 ms:
    a connection each would leave thousands of TIME_WAIT sockets); a failed
    connection is dropped and the next call dials again."""
    try:
        c = _status_lines.get(port) or Line(port, timeout=2)
        _status_lines[port] = c
        r = c.request(b"STATUS")
        if not r.startswith("STATUS "):
            raise OSError(f"STATUS got {r!r}")
        return dict(kv.split("=", 1) for kv in r.split()[1:] if "=" in kv)
    except OSError:
        old = _status_lines.pop(port, None)
        if old:
            old.close()
        return None


def schedstat(pid):
    """(seconds on a CPU, seconds runnable but waiting) of a process, all threads, from /proc."""
    on = waiting = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                a, b, _ = f.read().split()
                on += int(a)
                waiting += int(b)
    except OSError:
        return None
    return on / 1e9, waiting / 1e9


def wait(cond, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        time.sleep(0.01)
    sys.exit(f"timed out waiting for {what}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--meshqd", default=".build/release/meshqd")
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--payload-bytes", type=int, default=1 << 20)
    ap.add_argument("--connections", type=int, default=2)
    ap.add_argument("--pipeline", type=int, default=4)
    ap.add_argument("--leader-timeout-ms", type=int, default=2000,
                    help="the enqueue phase writes MiB-sized batches; keep the leader's lease through them")
    ap.add_argument("--keep", action="store_true", help="keep the data directories and logs")
    a = ap.parse_args()

    d = tempfile.mkdtemp(prefix="meshq-catchup-")
    ids = [1, 2, 3]
    client = {i: free_port() for i in ids}
    peer = {i: free_port() for i in ids}
    conf = os.path.join(d, "meshq.conf")
    with open(conf, "w") as f:
        f.write("[cluster]\n")
        f.write(f"max_payload_bytes = {max(65536, a.payload_bytes)}\n")
        f.write(f"max_memory_mb = {int(a.gib * 1024) * 2 + 1024}\n")
        f.write(f"leader_timeout_ms = {a.leader_timeout_ms}\ncommit_timeout_ms = {a.leader_timeout_ms * 4}\n")
        for i in ids:
            f.write(f"\n[node.{i}]\npeer = 127.0.0.1:{peer[i]}\nclient = 127.0.0.1:{client[i]}\ndata_dir = {d}/{i}\n")
    procs = {}

    def start(i):
        log = open(os.path.join(d, f"node{i}.log"), "ab")
        procs[i] = subprocess.Popen([a.meshqd, "--config", conf, "--id", str(i)], stdout=log, stderr=log)

    def stop_all():
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()

    try:
        for i in ids:
            start(i)
        wait(lambda: all((status(client[i]) or {}).get("leader") == "3" for i in ids), 30, "node 3 to lead")
        wait(lambda: (status(client[3]) or {}).get("role") == "leader", 30, "node 3 to lead")
        procs[1].kill()
        procs[1].wait()

        total = int(a.gib * (1 << 30))
        n = total // a.payload_bytes
        payload = b"x" * a.payload_bytes
        per = [n // a.connections + (1 if k < n % a.connections else 0) for k in range(a.connections)]
        errors = []

        def produce(count):
            c = Line(client[3])
            left = count
            while left > 0:
                k = min(a.pipeline, left)
                c.s.sendall(b"".join(b"ENQUEUE " + payload + b"\n" for _ in range(k)))
                for _ in range(k):
                    r = c.f.readline()
                    if not r.startswith(b"OK "):
                        errors.append(r)
                left -= k
            c.close()

        t = time.time()
        threads = [threading.Thread(target=produce, args=(k,)) for k in per]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if errors:
            sys.exit(f"{len(errors)} ENQUEUEs not OK, e.g. {errors[0][:80]!r}")
        enq = time.time() - t
        target = int(status(client[3])["commit"])
        payload_bytes = n * a.payload_bytes
        print(f"enqueued {n} tasks of {a.payload_bytes} bytes ({payload_bytes / 1e6:.0f} MB) "
              f"in {enq:.1f} s ({payload_bytes / 1e6 / enq:.0f} MB/s) with node 1 down; leader commit {target}")

        leader0 = schedstat(procs[3].pid)
        t0 = time.time()
        start(1)
        wait(lambda: status(client[1]) is not None, 60, "node 1 to answer")
        up = time.time() - t0
        wait(lambda: int((status(client[1]) or {}).get("commit", 0)) >= target, 600, "node 1 to catch up")
        took = time.time() - t0
        cpu = schedstat(procs[1].pid)
        leader1 = schedstat(procs[3].pid)
        leader_log = open(os.path.join(d, "node3.log")).read()
        sent = [ln for ln in leader_log.splitlines() if "event=snapshot_transfer" in ln and " peer=1 " in ln]
        mode = f"{len(sent)} chunked snapshot(s)" if sent else "entries"
        print(f"node 1 caught up {payload_bytes / 1e6:.0f} MB in {took:.2f} s: {payload_bytes / 1e6 / took:.0f} MB/s "
              f"(via {mode}; it answered PING {up:.2f} s after the restart)")
        if cpu:
            print(f"node 1 from its start: {cpu[0]:.2f} s on a CPU, {cpu[1]:.2f} s runnable but waiting for one")
        if leader0 and leader1:
            print(f"node 3 (the leader) meanwhile: {leader1[0] - leader0[0]:.2f} s on a CPU, "
                  f"{leader1[1] - leader0[1]:.2f} s waiting for one")
    finally:
        stop_all()
        if a.keep:
            print(f"kept {d}")
        else:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
