// What was acknowledged survives kill -9; what was acked never returns.
import Foundation
import Glibc
import Reactor
import MeshQClient
import MeshQTestSupport
import Testing

@Suite(.serialized) struct DurabilityTests {

    @Test func killDashNineDuringPipelinedLoadLosesNothingAcknowledged() throws {
        let d = try Daemon(name: "kill9").start()
        let c = try d.client(timeoutMs: 30_000)
        // Phase 1: 400 tasks, the first 150 acked (their ACK got OK).
        let first = try c.pipeline((0..<400).map { "ENQUEUE a\($0)" })
        #expect(first.allSatisfy { $0.hasPrefix("OK ") })
        var acked = Set<String>()
        for i in 0..<150 {
            let t = try c.request("DEQUEUE")
            let p = t.split(separator: " ", maxSplits: 3).map(String.init)
            #expect(try c.request("ACK \(p[1])").hasPrefix("OK "))
            acked.insert(p[3])
            _ = i
        }
        // Phase 2: 20,000 enqueues in flight; kill -9 after 2,000 got OK.
        // Replies come in command order, so the k-th OK is for b<k>.
        try c.send((0..<20_000).map { "ENQUEUE b\($0)\n" }.joined())
        var okCount = 0
        while okCount < 2_000 {
            let r = try c.readLine()
            #expect(r.hasPrefix("OK "))
            okCount += 1
        }
        d.kill9()
        // Replies already on the socket before the kill were acknowledged too.
        while let r = try? c.readLine(timeoutMs: 2_000), r.hasPrefix("OK ") { okCount += 1 }
        let okPayloads = Set((150..<400).map { "a\($0)" } + (0..<okCount).map { "b\($0)" })
        try d.start()
        #expect(d.log.contains("event=tasks_recovered"))
        let c2 = try d.client(timeoutMs: 30_000)
        let delivered = try c2.drainAcking()
        let deliveredSet = Set(delivered)
        #expect(delivered.count == deliveredSet.count, "a task was delivered twice after recovery")
        let lost = okPayloads.subtracting(deliveredSet)
        #expect(lost.isEmpty, "acknowledged tasks lost: \(lost.sorted().prefix(10))")
        #expect(deliveredSet.isDisjoint(with: acked), "acked tasks came back")
        // No task that was never sent appears, and ids keep growing after restart.
        #expect(deliveredSet.allSatisfy { $0.hasPrefix("a") || $0.hasPrefix("b") })
        let next = try c2.request("ENQUEUE after")
        let id = UInt64(next.split(separator: " ")[1])!
        #expect(id > 20_400)
    }

    @Test func restartKeepsReadyAndLeasedTasksAndTheEpochGrows() throws {
        let d = try Daemon(name: "restart").start()
        let c = try d.client()
        _ = try c.pipeline(["ENQUEUE one", "ENQUEUE two", "ENQUEUE three"])
        #expect(try c.request("DEQUEUE").hasPrefix("TASK 1 "))
        #expect(try c.request("ACK 2").hasPrefix("OK 2 "))      // a ready task may be acked
        let before = try c.request("STATUS")
        #expect(d.stop() == 0)
        #expect(d.log.contains("event=node_stopped"))
        try d.start()
        let c2 = try d.client()
        let after = try c2.request("STATUS")
        #expect(after.contains(" epoch=2 "))
        #expect(before.contains(" epoch=1 "))
        // Leases are leader-local: task 1 is ready again, before 3.
        let r = try c2.pipeline(["DEQUEUE", "DEQUEUE", "DEQUEUE"])
        #expect(r[0].hasPrefix("TASK 1 ") && r[0].hasSuffix(" one"))
        #expect(r[1].hasPrefix("TASK 3 ") && r[1].hasSuffix(" three"))
        #expect(r[2] == "EMPTY")
        let lamportBefore = UInt64(before.split(separator: " ").first { $0.hasPrefix("lamport=") }!.dropFirst(8))!
        let lamportAfter = UInt64(after.split(separator: " ").first { $0.hasPrefix("lamport=") }!.dropFirst(8))!
        #expect(lamportAfter >= lamportBefore, "Lamport clock went backwards across a restart")
    }

    @Test func tornTailIsDroppedAndTheNodeStarts() throws {
        let d = try Daemon(name: "torn").start()
        let c = try d.client()
        _ = try c.pipeline((0..<50).map { "ENQUEUE t\($0)" })
        d.kill9()
        // Append half a record's worth of garbage, as a crash mid-write leaves.
        let logs = try FileManager.default.contentsOfDirectory(atPath: d.dataDir).filter { $0.hasPrefix("log") && !$0.hasSuffix(".tmp") }
        let logFile = d.dataDir + "/" + (logs.sorted().last ?? "log")
        let fh = try #require(FileHandle(forWritingAtPath: logFile))
        fh.seekToEndOfFile()
        fh.write(Data([0x40, 0, 0, 0, 0xDE, 0xAD, 0xBE, 0xEF, 1, 2, 3]))
        fh.closeFile()
        try d.start()
        #expect(d.log.contains("event=log_torn_tail"))
        let c2 = try d.client()
        #expect(try c2.request("STATUS").contains(" ready=50 "))
        #expect(try c2.request("ENQUEUE next").hasPrefix("OK 51 "))
    }
}
