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
import time

from net import node_ip, node_ns

ROOT = "/run/meshq-chaos"
PIDS = f"{ROOT}/pids"
CLIENT_PORT = 7000
PEER_PORT = 7100
TMPFS_SIZE = "64m"


def config_text(n, ack_timeout_ms):
    lines = ["# written by chaos/run.py", "[cluster]", "fsync = always", "log_level = info",
             f"ack_timeout_ms = {ack_timeout_ms}", ""]
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


def request(i, line, timeout=1.0):
    """One command on a fresh connection to node i: its reply line, or None."""
    try:
        with socket.create_connection((node_ip(i), CLIENT_PORT), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(line.encode() + b"\n")
            buf = b""
            while b"\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    return None
                buf += chunk
    except OSError:
        return None
    return buf.split(b"\n", 1)[0].decode(errors="replace")


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
