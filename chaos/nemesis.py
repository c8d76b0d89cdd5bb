"""The nemesis: a seeded schedule of faults, then its execution.

`schedule(seed, duration, n)` is a pure function: the same seed, duration
and node count give the same list of faults (kind, start, length, targets),
so `make chaos SEED=s` replays the same fault schedule. One fault runs at a
time, with a quiet gap of 2-6 s between faults; the first starts after 5 s of
warm-up. Targets named "leader" are resolved when the fault starts (the
node that STATUS says leads), the rest are fixed by the seed.

Kinds: partition (random sides, or the leader alone, both directions
dropped), oneway (one direction between two nodes, or from the leader to
all others), linkcut (both directions of one pair: a
bridge partition where the others still see both ends), flap (a link cut or
partition switched on and off every 200-500 ms), kill (kill -9 of the leader
or a random node, restarted after 1-6 s), pause (SIGSTOP of the leader or a
random node for 0.5-5 s, then SIGCONT), disk (the node's tmpfs filled, then
freed), restart (kill -9 of every node, all started again after 1-3 s).

Invariant: when `run` returns (end of schedule or stop requested), every
fault is healed: no dropped packets, no paused process, no full disk, every
node started.
"""

import random
import traceback
import threading
import time

from cluster import find_leader
from net import partition

KINDS = [("partition", 3), ("oneway", 2), ("linkcut", 2), ("flap", 2), ("kill", 3),
         ("pause", 3), ("disk", 2), ("restart", 1)]


def schedule(seed, duration, n):
    rng = random.Random(seed)
    ids = list(range(1, n + 1))
    kinds = [k for k, w in KINDS for _ in range(w)]
    faults, t = [], 5.0
    while True:
        kind = rng.choice(kinds)
        f = {"kind": kind, "at": round(t, 2)}
        if kind == "partition":
            shuffled = rng.sample(ids, n)
            cut = rng.randint(1, n // 2)
            f.update(a=sorted(shuffled[:cut]), b=sorted(shuffled[cut:]), dur=rng.uniform(4, 12),
                     leader=rng.random() < 0.4)
        elif kind in ("oneway", "linkcut"):
            f.update(a=rng.sample(ids, 2), dur=rng.uniform(4, 10),
                     leader=kind == "oneway" and rng.random() < 0.4)
        elif kind == "flap":
            pair = rng.sample(ids, 2)
            f.update(a=[pair[0]], b=[pair[1]] if rng.random() < 0.5 else
                     [i for i in ids if i != pair[0]], dur=rng.uniform(4, 10),
                     period=rng.uniform(0.2, 0.5))
        elif kind in ("kill", "pause", "disk"):
            f.update(target="leader" if rng.random() < 0.5 else rng.choice(ids),
                     dur=rng.uniform(1, 6) if kind == "kill" else
                     rng.uniform(0.5, 5) if kind == "pause" else rng.uniform(4, 10))
        else:
            f.update(dur=rng.uniform(1, 3))
        f["dur"] = round(f["dur"], 2)
        if t + f["dur"] > duration - 2:
            return faults
        faults.append(f)
        t += f["dur"] + rng.uniform(2, 6)


class Nemesis(threading.Thread):
    def __init__(self, faults, nodes, net, recorder, stop_event):
        super().__init__(name="nemesis", daemon=True)
        self.faults = faults
        self.nodes = {n.i: n for n in nodes}
        self.net = net
        self.rec = recorder
        self.stop_event = stop_event
        self.lock = threading.Lock()       # held while a fault changes the cluster
        self.error = None
        self.active = None                 # the fault under way, if any

    def _wait_until(self, t):
        while not self.stop_event.is_set() and self.rec.now() < t:
            self.stop_event.wait(min(0.1, max(0.0, t - self.rec.now())))

    def _resolve_target(self, f):
        if f.get("target", "leader") == "leader":
            leader = find_leader(self.nodes.values())
            return leader if leader else random.Random(f["at"]).choice(list(self.nodes))
        return f["target"]

    def run(self):
        try:
            for f in self.faults:
                self._wait_until(f["at"])
                if self.stop_event.is_set():
                    break
                self._one(f)
        except Exception as e:         # reported by the runner, which then heals
            self.error = traceback.format_exc(limit=3)
        finally:
            with self.lock:
                self.heal()

    def _one(self, f):
        kind, end = f["kind"], f["at"] + f["dur"]
        with self.lock:
            self.active = f
            detail = self._begin_fault(f)
        self.rec.nemesis("start", kind, detail)
        if kind == "flap":
            on = True
            while not self.stop_event.is_set() and self.rec.now() < end:
                self.stop_event.wait(f["period"])
                on = not on
                with self.lock:
                    self.net.apply(partition(f["a"], f["b"]) if on else set())
        else:
            self._wait_until(end)
        with self.lock:
            self._end_fault(f)
            self.restart_dead()
            self.active = None
        self.rec.nemesis("stop", kind, detail)

    def _begin_fault(self, f):
        kind = f["kind"]
        if kind == "partition":
            if f["leader"]:
                leader = self._resolve_target(f)
                f["a"], f["b"] = [leader], [i for i in self.nodes if i != leader]
            self.net.apply(partition(f["a"], f["b"]))
            return f"{f['a']} | {f['b']}" + (" (leader alone)" if f["leader"] else "")
        if kind == "oneway":
            if f["leader"]:
                leader = self._resolve_target(f)
                self.net.apply({(leader, i) for i in self.nodes if i != leader})
                return f"{leader} (leader) -> all others dropped"
            self.net.apply({(f["a"][0], f["a"][1])})
            return f"{f['a'][0]} -> {f['a'][1]} dropped"
        if kind == "linkcut":
            self.net.apply(partition([f["a"][0]], [f["a"][1]]))
            return f"{f['a'][0]} <-> {f['a'][1]} dropped"
        if kind == "flap":
            self.net.apply(partition(f["a"], f["b"]))
            return f"{f['a']} | {f['b']} every {f['period']:.2f}s"
        if kind in ("kill", "pause", "disk"):
            f["node"] = self._resolve_target(f)
            node = self.nodes[f["node"]]
            if kind == "kill":
                node.kill()
            elif kind == "pause":
                node.pause()
            else:
                node.fill_disk()
            return f"node {f['node']} ({f['target']})"
        for node in self.nodes.values():
            node.kill()
        return "all nodes"

    def _end_fault(self, f):
        kind = f["kind"]
        if kind in ("partition", "oneway", "linkcut", "flap"):
            self.net.heal()
        elif kind == "kill":
            self.nodes[f["node"]].start()
        elif kind == "pause":
            self.nodes[f["node"]].resume()
        elif kind == "disk":
            self.nodes[f["node"]].free_disk()
        else:
            for node in self.nodes.values():
                node.start()

    def supervise(self):
        """Called every second: notes unexpected exits; restarts them unless a fault is on."""
        with self.lock:
            if self.active is None:
                self.restart_dead()
            else:
                for node in self.nodes.values():
                    node.reap(self.rec.now())

    def restart_dead(self):
        """Starts any node that died without being asked to (noted in node.deaths)."""
        for node in self.nodes.values():
            if node.reap(self.rec.now()) and not node.expect_down:
                node.start()

    def heal(self):
        self.net.heal()
        for node in self.nodes.values():
            node.free_disk()
            if node.paused:
                node.resume()
            node.reap(self.rec.now())
            node.start()
