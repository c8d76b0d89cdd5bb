"""The chaos cluster: real meshqd processes, one per network namespace.

Each node's data_dir lives on its own small tmpfs (/run/meshq-chaos/nodeI,
data in data/), so the nemesis can fill the disk with a file beside
data_dir and free it again. fsync = always. Every process started is
recorded in /run/meshq-chaos/pids, so a later run can end the ones a killed
run left behind (by pid, and only if that pid is still a meshqd of ours).
A node's stdout and stderr append to nodeI.log in the output folder across
restarts.

Invariant: `proc` is the live process of the node or None; `expect_down`
is true exactly while the nemesis keeps the node down on purpose, so
`reap` can tell an unexpected death (a crash) from a kill we made.
"""

import os
import signal
import socket
import subprocess
import threading
import time

from net import node_ip, node_ns

ROOT = "/run/meshq-chaos"
PIDS = f"{ROOT}/pids"
CLIENT_PORT = 7000
PEER_PORT = 7100
TMPFS_SIZE = "64m"


POISON_ACK_TIMEOUT_MS = 1000


def config_text(n, ack_timeout_ms, queues=None):
    """The chaos config; `queues` maps a queue name to its `[queue.NAME]`
    settings (chaos/clients.py QUEUES: the capped `poison` queue, given a
    short lease so its tasks reach their cap within a run)."""
    lines = ["# written by chaos/run.py", "[cluster]", "fsync = always", "log_level = info",
             f"ack_timeout_ms = {ack_timeout_ms}", ""]
    for name, settings in sorted((queues or {}).items()):
        lines += [f"[queue.{name}]", f"ack_timeout_ms = {POISON_ACK_TIMEOUT_MS}"]
        lines += [f"{k} = {v}" for k, v in sorted(settings.items())] + [""]
    for i in range(1, n + 1):
        lines += [f"[node.{i}]", f"peer = {node_ip(i)}:{PEER_PORT}",
                  f"client = {node_ip(i)}:{CLIENT_PORT}", f"data_dir = {ROOT}/node{i}/data", ""]
    return "\n".join(lines)


def _ours(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().decode(errors="replace")
    except OSError:
        return False
    return "meshqd" in cmd and ROOT in cmd


def clean_stale():
    """Ends the processes and unmounts the disks a previous run left behind."""
    if os.path.exists(PIDS):
        with open(PIDS) as f:
            for line in f:
                if line.strip().isdigit() and _ours(int(line)):
                    try:
                        os.kill(int(line), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        os.unlink(PIDS)
    time.sleep(0.2)
    if os.path.isdir(ROOT):
        for name in sorted(os.listdir(ROOT)):
            path = f"{ROOT}/{name}"
            if os.path.ismount(path):
                subprocess.run(["umount", "-l", path], check=False)
            if name.startswith("node"):
                try:
                    os.rmdir(path)
                except OSError:
                    pass
    os.makedirs(ROOT, exist_ok=True)


class LineError(Exception):
    """Why a connection gave no reply: refused, timed out, closed by the node."""

    def __init__(self, message, timed_out=False):
        super().__init__(message)
        self.timed_out = timed_out


class Line:
    """One connection to node i: commands pipelined, replies read in order.

    Any failure (connect refused, no reply in time, closed by the node)
    closes the connection and raises LineError naming it: a late reply must
    never be read as the answer to a later command. `ok()` says whether the
    connection is still open."""

    def __init__(self, i, timeout=5.0):
        self.i = i
        self.buf = b""
        try:
            self.sock = socket.create_connection((node_ip(i), CLIENT_PORT), timeout=timeout)
        except OSError as e:
            self.sock = None
            raise LineError(f"connect to node {i}: {e.strerror or e}") from None

    def ok(self):
        return self.sock is not None

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None

    def pipeline(self, lines, timeout=5.0):
        """Sends every line in one write, then reads one reply per line (in order)."""
        if self.sock is None:
            raise LineError(f"connection to node {self.i} already closed")
        deadline = time.monotonic() + timeout
        replies = []
        try:
            self.sock.settimeout(timeout)
            self.sock.sendall(b"".join(line.encode() + b"\n" for line in lines))
            while len(replies) < len(lines):
                while b"\n" not in self.buf:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise LineError(f"node {self.i} sent {len(replies)} of {len(lines)} replies "
                                        f"in {timeout:g} s (next: {lines[len(replies)][:40]!r})",
                                        timed_out=True)
                    self.sock.settimeout(left)
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        raise LineError(f"node {self.i} closed the connection after {len(replies)} "
                                        f"of {len(lines)} replies")
                    self.buf += chunk
                line, self.buf = self.buf.split(b"\n", 1)
                replies.append(line.decode(errors="replace"))
        except LineError:
            self.close()
            raise
        except OSError as e:
            self.close()
            if isinstance(e, socket.timeout):
                raise LineError(f"node {self.i} sent {len(replies)} of {len(lines)} replies "
                                f"in {timeout:g} s", timed_out=True) from None
            raise LineError(f"node {self.i} after {len(replies)} of {len(lines)} replies: "
                            f"{e.strerror or e}") from None
        return replies

    def call(self, line, timeout=5.0):
        return self.pipeline([line], timeout)[0]


# One shared connection per node for request() and status(), so polling a
# node's STATUS many times a second costs one connection, not one each (each
# closed connection leaves a TIME_WAIT socket for a minute; enough of them
# use up the ephemeral ports). A lock per node: the nemesis thread polls too.
_shared = {}
_shared_lock = threading.Lock()


def request(i, line, timeout=1.0):
    """One command safe to repeat (STATUS) on node i's shared connection:
    its reply line, or None.

    A kept connection that fails at once (the node closed it since the last
    call: a restart) is replaced once; a timeout drops the connection and
    gives None (the next call connects again)."""
    with _shared_lock:
        entry = _shared.setdefault(i, [threading.Lock(), None])
    with entry[0]:
        for attempt in (1, 2):
            fresh = entry[1] is None or not entry[1].ok()
            if fresh:
                try:
                    entry[1] = Line(i, timeout)
                except LineError:
                    entry[1] = None
                    return None
            try:
                return entry[1].call(line, timeout)
            except LineError as e:
                entry[1] = None
                if fresh or e.timed_out:
                    return None
        return None


def close_shared():
    """Closes every shared connection (end of a scenario or run)."""
    with _shared_lock:
        entries = list(_shared.values())
        _shared.clear()
    for lock, conn in entries:
        with lock:
            if conn is not None:
                conn.close()


def time_wait_sockets():
    """TCP sockets in TIME_WAIT in this process's network namespace."""
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                n += sum(1 for row in f if row.split()[3] == "06")
        except OSError:
            pass
    return n


def status(i, timeout=1.0):
    """STATUS of node i as a dict, or None when it does not answer in time."""
    line = request(i, "STATUS", timeout)
    if line is None or not line.startswith("STATUS "):
        return None
    return dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)


class Node:
    def __init__(self, i, meshqd, config, out_dir):
        self.i = i
        self.meshqd = meshqd
        self.config = config
        self.disk = f"{ROOT}/node{i}"
        self.log_path = f"{out_dir}/node{i}.log"
        self.proc = None
        self.paused = False
        self.expect_down = False
        self.deaths = []              # (time, returncode) of exits nobody asked for

    def mount(self):
        os.makedirs(self.disk, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", self.disk],
                       check=True)
        os.makedirs(f"{self.disk}/data")

    def unmount(self):
        if os.path.ismount(self.disk):
            subprocess.run(["umount", "-l", self.disk], check=False)
        try:
            os.rmdir(self.disk)
        except OSError:
            pass

    def start(self):
        if self.proc and self.proc.poll() is None:
            return
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", node_ns(self.i), self.meshqd, "--config", self.config,
             "--id", str(self.i)], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        with open(PIDS, "a") as f:
            f.write(f"{self.proc.pid}\n")
        self.paused = False
        self.expect_down = False

    def signal(self, sig):
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass

    def kill(self):
        """kill -9 and wait; the node stays down until start()."""
        self.expect_down = True
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self.paused = False

    def pause(self):
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        self.signal(signal.SIGCONT)
        self.paused = False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def reap(self, now):
        """Records an exit nobody asked for; returns True if the node is down."""
        if self.proc is not None and self.proc.poll() is not None:
            self.deaths.append((now, self.proc.returncode))
            self.proc = None
        return self.proc is None

    def fill_disk(self):
        """Writes a filler file beside data_dir until the tmpfs is full."""
        chunk = b"\0" * (1 << 20)
        try:
            with open(f"{self.disk}/fill", "ab") as f:
                while True:
                    f.write(chunk)
                    f.flush()
        except OSError:
            pass

    def free_disk(self):
        try:
            os.unlink(f"{self.disk}/fill")
        except FileNotFoundError:
            pass

    def stop(self):
        """End of the run: SIGCONT, SIGTERM, then SIGKILL after a grace period."""
        if not self.alive():
            return
        self.resume()
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def find_leader(nodes):
    """The node every answering node agrees leads (highest epoch wins a dispute), or None."""
    best = None
    for node in nodes:
        if not node.alive() or node.paused:
            continue
        st = status(node.i)
        if st and st.get("role") == "leader":
            epoch = int(st.get("epoch", "0"))
            if best is None or epoch > best[0]:
                best = (epoch, node.i)
    return best[1] if best else None
