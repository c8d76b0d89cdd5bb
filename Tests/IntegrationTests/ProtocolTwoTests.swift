// Protocol 2 against a real meshqd: named queues, priorities, delays,
// TOUCH, NACK with a delay, BURY, KICK, PAUSE, STATS, PEEK, idempotency keys
// and the delivery cap, and that delays, pauses and delivery counts survive
// a kill -9.
import Foundation
import MeshQClient
import MeshQTestSupport
import Testing

@Suite(.serialized) struct ProtocolTwoTests {
    @Test func netcatSessionOfTwoQueuesPrioritiesTouchBuryAndKick() throws {
        let d = try Daemon(name: "p2verbs").start()
        let c = try d.client()
        #expect(try c.request("HELLO t").hasSuffix(" meshq/2"))
        let puts = try c.pipeline(["PUT emails pri=5 low", "PUT emails pri=1 high", "PUT emails - default-pri",
                                   "PUT images - resize 42.png", "ENQUEUE plain"])
        #expect(puts.allSatisfy { $0.hasPrefix("OK ") })
        // PEEK shows what TAKE would lease, without leasing it.
        #expect(try c.request("PEEK emails").hasSuffix(" high"))
        let first = try #require(jobFields(try c.request("TAKE images,emails")))
        #expect(first.queue == "images" && first.payload == "resize 42.png" && first.deliveries == 1)
        let order = try c.pipeline(["TAKE emails", "TAKE emails", "TAKE emails", "TAKE emails"])
        #expect(order.prefix(3).compactMap { jobFields($0)?.payload } == ["high", "low", "default-pri"])
        #expect(order[3] == "EMPTY")
        // ENQUEUE/DEQUEUE are the queue `default`, byte for byte.
        #expect(try c.request("DEQUEUE").hasSuffix(" plain") == true)
        // TOUCH a live lease; BURY sends it to emails.dead; KICK brings it back.
        let high = try #require(jobFields(order[0]))
        #expect(try c.request("TOUCH \(high.id) 60000").hasPrefix("OK \(high.id) "))
        #expect(try c.request("BURY \(high.id)").hasPrefix("OK \(high.id) "))
        #expect(try c.request("TOUCH \(high.id)").hasPrefix("ERR NOTFOUND "))
        let s = try c.request("STATS emails")
        #expect(s.hasPrefix("STATS queue=emails ready=0 delayed=0 inflight=2 dead=1 paused_ms=0 oldest_ready_ms=0"))
        #expect(try c.request("KICK emails.dead") == "OK 1")
        let back = try #require(jobFields(try c.request("TAKE emails")))
        #expect(back.id == high.id && back.deliveries == 1)  // deliveries reset by KICK
        // STATS without a queue: one line per queue, then END.
        try c.send("STATS\n")
        var lines: [String] = []
        while lines.last != "END", lines.count < 20 { lines.append(try c.readLine()) }
        #expect(lines.last == "END")
        #expect(Set(lines.dropLast().compactMap { statsField($0, "queue") }).isSuperset(of: ["default", "emails", "images"]))
        // PAUSE holds the queue; 0 resumes it.
        #expect(try c.request("PUT images - later") .hasPrefix("OK "))
        #expect(try c.request("PAUSE images 600000") == "OK")
        #expect(try c.request("TAKE images") == "EMPTY")
        #expect(statsField(try c.request("STATS images"), "paused_ms").flatMap(Int.init).map { $0 > 500_000 } == true)
        #expect(try c.request("PAUSE images 0") == "OK")
        #expect(jobFields(try c.request("TAKE images"))?.payload == "later")
    }

    @Test func aKeyPutTwiceStoresOneTaskAndAnswersTheFirstId() throws {
        let d = try Daemon(name: "p2keys").start()
        let c = try d.client()
        let a = try c.request("PUT orders key=order:42 charge card")
        let b = try c.request("PUT orders key=order:42,pri=0 charge card again")
        let pa = a.split(separator: " "), pb = b.split(separator: " ")
        #expect(pa.count == 3 && pb.count == 4 && pb[3] == "dup" && pb[1] == pa[1] && pb[2] == pa[2])
        // Another queue, another key space.
        #expect(try c.request("PUT refunds key=order:42 refund").split(separator: " ").count == 3)
        #expect(statsField(try c.request("STATS orders"), "ready") == "1")
        // Acked, the key still counts within its window.
        let j = try #require(jobFields(try c.request("TAKE orders")))
        #expect(try c.request("ACK \(j.id)").hasPrefix("OK "))
        #expect(try c.request("PUT orders key=order:42 charge").hasSuffix(" dup"))
        #expect(try c.request("TAKE orders") == "EMPTY")
    }

    @Test func aPoisonTaskReachesTheDeadLetterQueueAfterMaxDeliveries() throws {
        let d = try Daemon(name: "p2poison", sections: "[queue.jobs]\nmax_deliveries = 2\ndead_letter = poison").start()
        let c = try d.client()
        let put = try c.request("PUT jobs - crash me")
        let id = try #require(put.split(separator: " ").dropFirst().first.flatMap { UInt64($0) })
        for n in 1...2 {
            let j = try #require(jobFields(try c.request("TAKE jobs")))
            #expect(j.id == id && j.deliveries == n)
            #expect(try c.request("NACK \(id)").hasPrefix("OK "))
        }
        // A third lease would pass the cap: it is dead-lettered instead.
        #expect(try c.request("TAKE jobs") == "EMPTY")
        #expect(Harness.eventually { (try? c.request("STATS jobs")).flatMap { statsField($0, "dead") } == "1" })
        let dead = try #require(jobFields(try c.request("TAKE poison")))
        #expect(dead.id == id && dead.queue == "poison" && dead.deliveries == 3)
        #expect(d.log.contains("event=task_dead_lettered"))
    }

    @Test func delaysPausesAndCountsSurviveAKill9() throws {
        let d = try Daemon(name: "p2restart").start()
        var c = try d.client()
        // A task delayed 2 s, and one leased twice, then kill -9.
        let delayed = try c.request("PUT later delay=2000 wake up")
        #expect(delayed.hasPrefix("OK "))
        let putAt = Date()
        #expect(try c.request("TAKE later") == "EMPTY")
        #expect(try c.request("PUT counted - x").hasPrefix("OK "))
        let j1 = try #require(jobFields(try c.request("TAKE counted")))
        #expect(try c.request("NACK \(j1.id)").hasPrefix("OK "))
        let j2 = try #require(jobFields(try c.request("TAKE counted")))
        #expect(j2.deliveries == 2)
        #expect(try c.request("PAUSE paused 600000") == "OK")
        d.kill9()
        try d.start()
        c = try d.client()
        // A new leadership ends the leases of the last one (the task is ready
        // again at once); the delivery count goes on.
        #expect(jobFields(try c.request("TAKE counted"))?.deliveries == 3)
        #expect(statsField(try c.request("STATS paused"), "paused_ms").flatMap(Int.init).map { $0 > 500_000 } == true)
        // The delay fires, and not early.
        var woke: String?
        let deadline = Date().addingTimeInterval(20)
        while woke == nil, Date() < deadline {
            let r = try c.request("TAKE later 500")
            if r != "EMPTY" { woke = r }
        }
        #expect(jobFields(woke ?? "")?.payload == "wake up")
        #expect(Date().timeIntervalSince(putAt) >= 1.9)
    }

    @Test func badArgumentsGetBadargAndTheConnectionGoesOn() throws {
        let d = try Daemon(name: "p2badarg").start()
        let c = try d.client()
        let bad = ["PUT bad/queue - x", "PUT q pri=abc x", "PUT q key=" + String(repeating: "k", count: 129) + " x",
                   "PUT q delay=-5 x", "PUT q -", "TAKE", "TOUCH abc", "NACK 1 -1", "KICK", "PAUSE q", "PEEK"]
        let r = try c.pipeline(bad + ["PING"])
        for (line, reply) in zip(bad, r) { #expect(reply.hasPrefix("ERR BADARG "), "\(line) -> \(reply)") }
        #expect(r.last == "PONG")
        #expect(try c.request("TOUCH 999").hasPrefix("ERR NOTFOUND "))
        #expect(try c.request("BURY 999").hasPrefix("ERR NOTFOUND "))
        #expect(try c.request("KICK nothing.dead") == "OK 0")
    }
}
