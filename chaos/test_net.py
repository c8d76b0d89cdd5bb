"""Checks that the chaos network drops what the nemesis asks and nothing else:
UDP datagrams between node namespaces under a one-way cut, a partition and
after healing. Needs root and nft; takes the chaos lock so it never tears
down a running chaos run's namespaces. Run by `make test-chaos`.
"""

import fcntl
import os
import shutil
import subprocess
import time
import unittest

import net

PAIRS = [(1, 2), (2, 1), (1, 3), (3, 2)]


def delivered(a, b):
    """Whether a UDP datagram sent from node a reaches node b."""
    recv = subprocess.Popen(
        ["ip", "netns", "exec", net.node_ns(b), "python3", "-c",
         "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
         f"s.bind(('{net.node_ip(b)}', 9000)); s.settimeout(2); print('ready', flush=True); "
         "print(s.recv(10))"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert recv.stdout.readline().strip() == "ready"
    for _ in range(3):
        subprocess.run(["ip", "netns", "exec", net.node_ns(a), "python3", "-c",
                        "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
                        f".sendto(b'x', ('{net.node_ip(b)}', 9000))"], check=True)
        time.sleep(0.05)
    out, _ = recv.communicate()
    return "b'x'" in out


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("nft"), "needs root and nftables")
class NetworkFaultTests(unittest.TestCase):
    def setUp(self):
        self.lock = open("/run/meshq-chaos.lock", "w")
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        net.remove_all()
        self.net = net.Network(3)
        self.net.setup()

    def tearDown(self):
        net.remove_all()
        self.lock.close()

    def reach(self):
        return {p: delivered(*p) for p in PAIRS}

    def test_faults_drop_exactly_the_blocked_directions(self):
        self.assertEqual(self.reach(), {p: True for p in PAIRS})
        self.net.apply({(1, 2)})
        self.assertEqual(self.reach(), {(1, 2): False, (2, 1): True, (1, 3): True, (3, 2): True})
        self.net.apply(net.partition([1], [2, 3]))
        self.assertEqual(self.reach(), {(1, 2): False, (2, 1): False, (1, 3): False, (3, 2): True})
        self.net.heal()
        self.assertEqual(self.reach(), {p: True for p in PAIRS})


if __name__ == "__main__":
    unittest.main()
