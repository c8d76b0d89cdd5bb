"""The chaos network: one network namespace per node, joined by a bridge.

    mqc-hub   bridge mqcbr0 10.77.0.100/24; the runner and its clients live here
    mqc-nI    eth0 10.77.0.I/24, a veth whose other end (vhI) is on the bridge

Nothing is added to the root namespace: the runner moves itself into mqc-hub
(setns) before it starts any thread, so clients reach every node over the
bridge and faults never touch the host's own interfaces.

Faults are a set of blocked directed pairs (src, dst): packets from node src
to node dst are dropped (never rejected) by an nftables rule in dst's
namespace (`ip saddr SRC drop` on input). A partition blocks both directions
between its sides, a one-way cut a single direction, a link cut both
directions of one pair. Traffic from clients (10.77.0.100) is never dropped.
Invariant: the rules in every namespace are exactly what `blocked` says;
`apply` rewrites a namespace's table atomically in one nft transaction.
"""

import ctypes
import os
import subprocess

PREFIX = "mqc-"
HUB = "mqc-hub"
BRIDGE = "mqcbr0"
CLIENT_IP = "10.77.0.100"
CLONE_NEWNET = 0x40000000


def node_ns(i):
    return f"{PREFIX}n{i}"


def node_ip(i):
    return f"10.77.0.{i}"


def sh(*args, check=True, stdin=None):
    r = subprocess.run(list(args), input=stdin, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")
    return r


def stale_namespaces():
    out = sh("ip", "netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX)]


def remove_all():
    """Deletes every mqc-* namespace (with its veths, bridge and nft tables)."""
    for ns in stale_namespaces():
        sh("ip", "netns", "del", ns, check=False)


class Network:
    def __init__(self, n):
        self.n = n
        self.blocked = set()          # (src, dst) node ids
        self.root_fd = None

    def setup(self):
        sh("ip", "netns", "add", HUB)
        sh("ip", "-n", HUB, "link", "set", "lo", "up")
        sh("ip", "-n", HUB, "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "-n", HUB, "addr", "add", f"{CLIENT_IP}/24", "dev", BRIDGE)
        sh("ip", "-n", HUB, "link", "set", BRIDGE, "up")
        for i in range(1, self.n + 1):
            ns = node_ns(i)
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", HUB, "link", "add", f"vh{i}", "type", "veth",
               "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", HUB, "link", "set", f"vh{i}", "master", BRIDGE, "up")
            sh("ip", "-n", ns, "addr", "add", f"{node_ip(i)}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
        self.blocked = set()
        for i in range(1, self.n + 1):
            self._write_rules(i)

    def enter_hub(self):
        """Moves this (still single-threaded) process into the hub namespace."""
        libc = ctypes.CDLL(None, use_errno=True)
        self.root_fd = os.open("/proc/self/ns/net", os.O_RDONLY)
        fd = os.open(f"/var/run/netns/{HUB}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns into the hub namespace failed")
        finally:
            os.close(fd)

    def leave_hub(self):
        if self.root_fd is not None:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.setns(self.root_fd, CLONE_NEWNET)
            os.close(self.root_fd)
            self.root_fd = None

    def _write_rules(self, dst):
        sources = sorted(s for (s, d) in self.blocked if d == dst)
        rule = ""
        if sources:
            rule = "ip saddr { " + ", ".join(node_ip(s) for s in sources) + " } drop"
        script = ("add table inet mqchaos\ndelete table inet mqchaos\n"
                  "table inet mqchaos {\n chain input {\n"
                  "  type filter hook input priority 0; policy accept;\n"
                  f"  {rule}\n }}\n}}\n")
        sh("ip", "netns", "exec", node_ns(dst), "nft", "-f", "-", stdin=script)

    def apply(self, blocked):
        """Makes the dropped pairs exactly `blocked` (touching only changed nodes)."""
        blocked = set(blocked)
        changed = {d for (_, d) in blocked ^ self.blocked}
        self.blocked = blocked
        for dst in sorted(changed):
            self._write_rules(dst)

    def heal(self):
        self.apply(set())


def partition(side_a, side_b):
    """Both directions between every node of side_a and every node of side_b."""
    return {(a, b) for a in side_a for b in side_b} | {(b, a) for a in side_a for b in side_b}
