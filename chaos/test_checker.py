"""Unit tests of the chaos checker: for each property, a small hand-made
history that satisfies it and one that violates it.

Run: python3 -m unittest discover -s chaos   (or `make test-chaos-checker`)
"""

import unittest

from checker import check
from history import classify


class H:
    """Builds a history: each call appends an invoke and its completion."""

    def __init__(self):
        self.events = []
        self.op = 0
        self.t = 0.0

    def call(self, client, f, arg, reply, node=1, duration=0.01):
        self.op += 1
        self.t += 0.1
        self.events.append({"t": self.t, "phase": "invoke", "op": self.op, "client": client,
                            "node": node, "f": f, "arg": arg})
        self.events.append({"t": self.t + duration, "phase": "complete", "op": self.op,
                            "client": client, "node": node, "f": f,
                            "result": classify(f, reply), "reply": reply})
        return self.op

    def invoke_only(self, client, f, arg, node=1):
        """An operation whose completion never came (the run ended, the client died)."""
        self.op += 1
        self.t += 0.1
        self.events.append({"t": self.t, "phase": "invoke", "op": self.op, "client": client,
                            "node": node, "f": f, "arg": arg})

    def sleep(self, seconds):
        self.t += seconds

    def drained(self):
        self.events.append({"t": self.t + 1, "phase": "meta", "drain": "complete"})
        return self.events


def props(events):
    return sorted({v["property"] for v in check(events)})


class ClassifyTests(unittest.TestCase):
    def test_outcomes(self):
        self.assertEqual(classify("enqueue", "OK 1 2"), "ok")
        self.assertEqual(classify("enqueue", "QUEUED 2-1 5"), "ok")
        self.assertEqual(classify("enqueue", "ERR NOQUORUM no majority"), "unknown")
        self.assertEqual(classify("enqueue", "ERR NOLEADER may have been applied"), "unknown")
        self.assertEqual(classify("enqueue", None), "unknown")
        self.assertEqual(classify("enqueue", "ERR BUSY memory"), "err")
        self.assertEqual(classify("ack", "ERR NOTFOUND no such task"), "err")
        self.assertEqual(classify("dequeue", "EMPTY"), "ok")
        self.assertEqual(classify("put", "OK 1 2 dup"), "ok")
        self.assertEqual(classify("put", "QUEUED 2-1 5"), "ok")
        self.assertEqual(classify("put", "ERR NOQUORUM no majority"), "unknown")
        self.assertEqual(classify("take", "JOB 1 5 work 1 a"), "ok")
        self.assertEqual(classify("take", "EMPTY"), "ok")
        self.assertEqual(classify("take", "TASK 1 5 a"), "unknown")


class CleanHistoryTests(unittest.TestCase):
    def test_a_normal_history_passes(self):
        h = H()
        h.call("p1", "hello", "p1", "HELLO 1 3 meshq/1")
        h.call("p1", "enqueue", "a", "OK 1 4")
        h.call("p1", "enqueue", "b", "ERR NOQUORUM no majority")       # unknown, never applied
        h.call("p1", "enqueue", "c", "QUEUED 2-1 6", node=2)
        h.call("c1", "dequeue", None, "TASK 1 7 a")
        h.call("c1", "nack", "1", "OK 1 8")
        h.call("c1", "dequeue", None, "TASK 1 9 a")                    # redelivery is fine
        h.call("c1", "ack", "1", "OK 1 10")
        h.call("d", "dequeue", None, "TASK 2 11 c")
        h.call("d", "ack", "2", "OK 2 12")
        h.call("d", "dequeue", None, "EMPTY")
        self.assertEqual(check(h.drained()), [])


class PropertyTests(unittest.TestCase):
    def test_1_lost_acknowledged_enqueue(self):
        h = H()
        h.call("p1", "enqueue", "a", "OK 1 4")
        h.call("d", "dequeue", None, "EMPTY")
        self.assertEqual(props(h.drained()), [1])

    def test_1_not_judged_without_a_completed_drain(self):
        h = H()
        h.call("p1", "enqueue", "a", "OK 1 4")
        self.assertEqual(props(h.events), [])

    def test_1_an_ack_of_unknown_outcome_may_have_removed_it(self):
        # The id came from the enqueue reply here (a consumer could only have
        # it from a delivery that the history lost, e.g. a killed client).
        h = H()
        h.call("p1", "enqueue", "a", "OK 1 4")
        h.call("c1", "ack", "1", None)
        self.assertEqual(props(h.drained()), [])

    def test_2_delivery_after_ack_ok(self):
        h = H()
        h.call("p1", "enqueue", "a", "OK 1 4")
        h.call("c1", "dequeue", None, "TASK 1 5 a")
        h.call("c1", "ack", "1", "OK 1 6")
        h.call("c2", "dequeue", None, "TASK 1 7 a")
        self.assertEqual(props(h.drained()), [2])

    def test_2_a_dequeue_concurrent_with_the_ack_may_return_it(self):
        h = H()
        h.call("p1", "enqueue", "a", "OK 1 4")
        h.call("c1", "dequeue", None, "TASK 1 5 a")
        h.call("c2", "dequeue", None, "TASK 1 7 a", duration=1.0)   # invoked before the ACK's OK
        h.call("c1", "ack", "1", "OK 1 6")
        self.assertEqual(props(h.drained()), [])

    def test_3_two_payloads_for_one_id(self):
        h = H()
        h.call("p1", "enqueue", "a", "OK 1 4")
        h.call("p2", "enqueue", "b", "OK 1 5")
        h.call("d", "dequeue", None, "TASK 1 6 a")
        h.call("d", "ack", "1", "OK 1 7")
        self.assertIn(3, props(h.drained()))

    def test_3_payload_nobody_sent(self):
        h = H()
        h.call("d", "dequeue", None, "TASK 9 6 ghost")
        self.assertEqual(props(h.drained()), [3])

    def test_4_queued_enqueue_never_applied(self):
        h = H()
        h.call("p1", "enqueue", "a", "QUEUED 2-1 4", node=2)
        h.call("d", "dequeue", None, "EMPTY")
        self.assertEqual(props(h.drained()), [4])

    def test_4_queued_enqueue_applied_twice(self):
        h = H()
        h.call("p1", "enqueue", "a", "QUEUED 2-1 4", node=2)
        h.call("d", "dequeue", None, "TASK 3 5 a")
        h.call("d", "dequeue", None, "TASK 4 6 a")
        self.assertEqual(props(h.drained()), [4])

    def test_5_unknown_enqueue_applied_twice(self):
        h = H()
        h.call("p1", "enqueue", "a", "ERR NOLEADER may have been applied")
        h.call("d", "dequeue", None, "TASK 3 5 a")
        h.call("d", "dequeue", None, "TASK 4 6 a")
        self.assertEqual(props(h.drained()), [5])

    def test_5_unknown_enqueue_applied_once_is_fine(self):
        h = H()
        h.call("p1", "enqueue", "a", None)
        h.call("d", "dequeue", None, "TASK 3 5 a")
        self.assertEqual(props(h.drained()), [])

    def test_5_failed_enqueue_applied(self):
        h = H()
        h.call("p1", "enqueue", "a", "ERR BUSY too much queued")
        h.call("d", "dequeue", None, "TASK 3 5 a")
        self.assertEqual(props(h.drained()), [5])

    def test_5_ok_enqueue_applied_under_another_id_too(self):
        h = H()
        h.call("p1", "enqueue", "a", "OK 3 4")
        h.call("d", "dequeue", None, "TASK 3 5 a")
        h.call("d", "dequeue", None, "TASK 4 6 a")
        self.assertEqual(props(h.drained()), [5])

    def test_6_lamport_goes_back(self):
        h = H()
        h.call("p1", "hello", "p1", "HELLO 1 10 meshq/1")
        h.call("p1", "enqueue", "a", "OK 1 12")
        h.call("p1", "enqueue", "b", "OK 2 11", node=2)
        h.call("d", "dequeue", None, "TASK 1 20 a")
        h.call("d", "dequeue", None, "TASK 2 21 b")
        self.assertEqual(props(h.drained()), [6])

    def test_6_is_per_client(self):
        h = H()
        h.call("p1", "enqueue", "a", "OK 1 12")
        h.call("p2", "enqueue", "b", "OK 2 11")
        h.call("d", "dequeue", None, "TASK 1 20 a")
        h.call("d", "dequeue", None, "TASK 2 21 b")
        self.assertEqual(props(h.drained()), [])

    def test_an_operation_that_never_completed_counts_as_unknown(self):
        h = H()
        h.invoke_only("p1", "enqueue", "a")
        h.call("d", "dequeue", None, "TASK 3 5 a")
        h.call("d", "dequeue", None, "TASK 4 6 a")
        self.assertEqual(props(h.drained()), [5])


def put(payload, queue="work", pri=None, delay=None, key=None):
    return {"queue": queue, "payload": payload, "pri": pri, "delay": delay, "key": key}


POISON = {"t": 0.0, "phase": "meta",
          "queues": {"poison": {"max_deliveries": 2, "dead_letter": "poison.dead"}}}


class ProtocolTwoTests(unittest.TestCase):
    def test_a_normal_protocol_2_history_passes(self):
        h = H()
        h.events.append(POISON)
        h.call("p1", "put", put("a", pri=3, key="k1"), "ERR NOQUORUM no majority")
        h.call("p1", "put", put("a", pri=3, key="k1"), "OK 5 9 dup")  # the first had committed
        h.call("p1", "put", put("a", pri=3, key="k1"), "OK 5 9 dup")
        h.call("p1", "put", put("b", delay=1000), "OK 6 10")
        h.call("p1", "put", put("x", queue="poison"), "OK 7 11")
        h.call("c1", "take", "work,poison", "JOB 5 12 work 1 a")
        h.call("c1", "nack", {"id": "5", "delay": 500}, "OK 5 13")
        h.call("c2", "take", "work,poison", "JOB 7 14 poison 1 x")
        h.call("c2", "take", "work,poison", "JOB 7 15 poison 2 x")
        h.sleep(1.0)
        h.call("c1", "take", "work,poison", "JOB 5 16 work 2 a")    # after its NACK delay
        h.call("c1", "ack", "5", "OK 5 17")
        h.call("d", "take", "work,poison,poison.dead", "JOB 6 18 work 1 b")
        h.call("d", "ack", "6", "OK 6 19")
        h.call("d", "take", "work,poison,poison.dead", "JOB 7 20 poison.dead 2 x")
        h.call("d", "ack", "7", "OK 7 21")
        h.call("d", "take", "work,poison,poison.dead", "EMPTY")
        self.assertEqual(check(h.drained()), [])

    def test_1_applies_to_puts(self):
        h = H()
        h.call("p1", "put", put("a"), "OK 1 4")
        h.call("d", "take", "work", "EMPTY")
        self.assertEqual(props(h.drained()), [1])

    def test_1_a_dup_names_a_task_that_must_be_delivered(self):
        h = H()
        h.call("p1", "put", put("a", key="k"), "ERR NOQUORUM no majority")
        h.call("p1", "put", put("a", key="k"), "OK 3 5 dup")
        h.call("d", "take", "work", "EMPTY")
        self.assertEqual(props(h.drained()), [1])

    def test_5_a_keyed_retry_may_follow_a_failed_attempt(self):
        h = H()
        h.call("p1", "put", put("a", key="k"), "ERR BUSY memory")
        h.call("p1", "put", put("a", key="k"), "OK 3 5")
        h.call("d", "take", "work", "JOB 3 6 work 1 a")
        h.call("d", "ack", "3", "OK 3 7")
        self.assertEqual(props(h.drained()), [])

    def test_6_a_dup_carries_the_first_stamp_which_is_not_judged(self):
        h = H()
        h.call("p1", "put", put("a", key="k"), "OK 3 5")
        h.call("p1", "put", put("b"), "OK 4 9")
        h.call("p1", "put", put("a", key="k"), "OK 3 5 dup")        # 5 < 9, by design
        h.call("d", "take", "work", "JOB 3 20 work 1 a")
        h.call("d", "take", "work", "JOB 4 21 work 1 b")
        self.assertEqual(props(h.drained()), [])

    def test_6_applies_to_jobs(self):
        h = H()
        h.call("p1", "put", put("a"), "OK 3 5")
        h.call("p1", "take", "work", "JOB 3 9 work 1 a")
        h.call("p1", "ack", "3", "OK 3 7")
        self.assertEqual(props(h.drained()), [6])

    def test_7_two_tasks_named_for_one_key(self):
        h = H()
        h.call("p1", "put", put("a", key="k"), "OK 1 4")
        h.call("p1", "put", put("b", key="k"), "OK 2 5")
        h.call("d", "take", "work", "JOB 1 6 work 1 a")
        h.call("d", "take", "work", "JOB 2 7 work 1 b")
        self.assertEqual(props(h.drained()), [7])

    def test_7_two_tasks_delivered_for_one_key(self):
        h = H()
        h.call("p1", "put", put("a", key="k"), None)
        h.call("p1", "put", put("b", key="k"), "ERR NOLEADER may have been applied")
        h.call("d", "take", "work", "JOB 3 6 work 1 a")
        h.call("d", "take", "work", "JOB 4 7 work 1 b")
        self.assertEqual(props(h.drained()), [7])

    def test_7_keys_are_per_queue(self):
        h = H()
        h.call("p1", "put", put("a", key="k"), "OK 1 4")
        h.call("p1", "put", put("b", queue="other", key="k"), "OK 2 5")
        h.call("d", "take", "work,other", "JOB 1 6 work 1 a")
        h.call("d", "take", "work,other", "JOB 2 7 other 1 b")
        self.assertEqual(props(h.drained()), [])

    def test_8_a_job_past_the_delivery_cap(self):
        h = H()
        h.events.append(POISON)
        h.call("p1", "put", put("x", queue="poison"), "OK 1 4")
        h.call("c1", "take", "poison", "JOB 1 5 poison 1 x")
        h.call("c1", "take", "poison", "JOB 1 6 poison 2 x")
        h.call("c1", "take", "poison", "JOB 1 7 poison 3 x")
        self.assertEqual(props(h.drained()), [8])

    def test_8_uncapped_queues_and_dead_letter_queues_are_not_judged(self):
        h = H()
        h.events.append(POISON)
        h.call("p1", "put", put("x", queue="poison"), "OK 1 4")
        h.call("p1", "put", put("y"), "OK 2 5")
        h.call("c1", "take", "poison.dead", "JOB 1 6 poison.dead 3 x")
        h.call("c1", "take", "work", "JOB 2 7 work 9 y")
        self.assertEqual(props(h.drained()), [])

    def test_9_a_delayed_put_delivered_early(self):
        h = H()
        h.call("p1", "put", put("a", delay=2000), "OK 1 4")
        h.sleep(1.5)
        h.call("c1", "take", "work", "JOB 1 5 work 1 a")
        self.assertEqual(props(h.drained()), [9])

    def test_9_the_delay_counts_from_the_first_attempt(self):
        h = H()
        h.call("p1", "put", put("a", delay=2000, key="k"), None)     # committed, reply lost
        h.sleep(1.5)
        h.call("p1", "put", put("a", delay=2000, key="k"), "OK 1 4 dup")
        h.sleep(0.5)
        h.call("c1", "take", "work", "JOB 1 5 work 1 a")             # due 2 s after the first
        self.assertEqual(props(h.drained()), [])

    def test_9_a_nacked_task_delivered_before_its_delay(self):
        h = H()
        h.call("p1", "put", put("a"), "OK 1 4")
        h.call("c1", "take", "work", "JOB 1 5 work 1 a")
        h.call("c1", "nack", {"id": "1", "delay": 3000}, "OK 1 6")
        h.call("c2", "take", "work", "JOB 1 7 work 2 a")
        self.assertEqual(props(h.drained()), [9])

    def test_9_a_take_invoked_before_the_nack_was_answered_is_not_judged(self):
        # c2's lease may have been granted before the NACK (the first lease ran out).
        h = H()
        h.call("p1", "put", put("a"), "OK 1 4")
        h.call("c1", "take", "work", "JOB 1 5 work 1 a")
        h.call("c2", "take", "work", "JOB 1 7 work 2 a", duration=0.5)
        h.call("c1", "nack", {"id": "1", "delay": 3000}, "OK 1 6")
        self.assertEqual(props(h.drained()), [])


if __name__ == "__main__":
    unittest.main()
