"""Unit tests of the availability figures in the chaos report."""

import unittest

from report import availability, summary, windows
from test_checker import H


class AvailabilityTests(unittest.TestCase):
    def history(self):
        h = H()
        h.events.append({"t": 0.0, "phase": "meta", "workload": "start"})
        h.call("p1", "enqueue", "a", "OK 1 2")                      # t=0.1
        h.events.append({"t": 0.5, "phase": "nemesis", "event": "start", "fault": "kill",
                         "detail": "node 3 (leader)"})
        h.t = 4.0
        h.call("p1", "enqueue", "b", "QUEUED 2-1 3")                # t=4.1, not a commit
        h.call("p1", "enqueue", "c", "OK 2 4")                      # t=4.2
        h.events.append({"t": 5.0, "phase": "nemesis", "event": "stop", "fault": "kill",
                         "detail": "node 3 (leader)"})
        h.call("c1", "dequeue", None, "EMPTY")                      # t=4.3
        h.events.append({"t": 6.0, "phase": "meta", "workload": "stop"})
        return h.events

    def test_longest_stretch_without_an_enqueue_ok(self):
        gap, at = availability(self.history())["longest_no_enqueue_ok"]
        self.assertAlmostEqual(gap, 4.1, places=2)                  # 0.11 .. 4.21
        self.assertAlmostEqual(at, 0.11, places=2)

    def test_successful_commands_per_second(self):
        av = availability(self.history())
        self.assertEqual(av["ops_per_sec"], [1, 0, 0, 0, 3, 0, 0])
        self.assertEqual(av["enq_ok_per_sec"], [1, 0, 0, 0, 1, 0, 0])

    def test_fault_windows_and_summary(self):
        events = self.history()
        self.assertEqual(windows(events), [(0.5, 5.0, "kill", "node 3 (leader)")])
        text = summary(events, [], {"seed": 1, "nodes": 3, "duration": 6, "rate": 10})
        self.assertIn("faults: kill 1", text)
        self.assertIn("violations: 0", text)


if __name__ == "__main__":
    unittest.main()
