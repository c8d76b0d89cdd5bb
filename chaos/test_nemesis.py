"""Unit tests of the nemesis schedule: a pure function of seed, duration and
node count, one fault at a time, every kind present in a long run."""

import unittest

from nemesis import KINDS, schedule


class ScheduleTests(unittest.TestCase):
    def test_same_seed_same_schedule(self):
        self.assertEqual(schedule(42, 600, 5), schedule(42, 600, 5))
        self.assertNotEqual(schedule(42, 600, 5), schedule(43, 600, 5))

    def test_one_fault_at_a_time_within_the_run(self):
        faults = schedule(7, 600, 3)
        self.assertGreaterEqual(faults[0]["at"], 5.0)
        for a, b in zip(faults, faults[1:]):
            self.assertGreaterEqual(b["at"], a["at"] + a["dur"] + 2 - 0.01)
        self.assertLessEqual(faults[-1]["at"] + faults[-1]["dur"], 600 - 2)

    def test_every_kind_appears_in_a_long_run(self):
        kinds = {f["kind"] for f in schedule(1, 600, 5)}
        self.assertEqual(kinds, {k for k, _ in KINDS})

    def test_partitions_name_real_nodes_on_both_sides(self):
        for f in schedule(3, 600, 5):
            if f["kind"] in ("partition", "flap"):
                self.assertTrue(f["a"] and f["b"])
                self.assertFalse(set(f["a"]) & set(f["b"]))
                self.assertTrue(set(f["a"]) | set(f["b"]) <= {1, 2, 3, 4, 5})


if __name__ == "__main__":
    unittest.main()
