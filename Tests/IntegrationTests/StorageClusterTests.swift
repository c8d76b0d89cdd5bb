// A corrupt follower in a real three-node cluster: it refuses to start (it
// must not vote or serve with a log that lost entries it acknowledged); the
// documented way back, `meshqd --repair` while the others have a leader,
// brings it back, it catches up, and then the leader may die: every task
// answered OK is still delivered. And a node whose data_dir was wiped parks
// new tasks under sequences above the ones the cluster already applied from
// it, so they are delivered, not dropped as duplicates.
import Foundation
import Glibc
import Reactor
import MeshQClient
import MeshQTestSupport
import Testing

@Suite(.serialized) struct StorageClusterTests {
    private func commit(_ s: [String: String]?) -> UInt64? { s?["commit"].flatMap { UInt64($0) } }

    @Test func aCorruptFollowerRefusesThenRepairsCatchesUpAndTheLeaderMayDie() throws {
        let c = Cluster(name: "corrupt-follower")
        try c.start()
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        let client = try LineClient(host: "127.0.0.1", port: c.clientPorts[3]!, timeoutMs: 30_000)
        var ok: [String] = []
        for i in 0..<150 where try client.request("ENQUEUE c\(i)").hasPrefix("OK ") { ok.append("c\(i)") }
        #expect(ok.count == 150)
        // Node 1 has every entry before it goes down (OK needs only a majority).
        let leaderCommit = try #require(commit(c.status(3)))
        #expect(Harness.eventually(timeout: 30) { (commit(c.status(1)) ?? 0) >= leaderCommit })
        c.kill9(1)

        let dir = c.dir + "/1"
        let name = try #require(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("log.") }.sorted().last)
        let file = dir + "/" + name
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
        bytes[bytes.count / 2] ^= 0x08
        try Data(bytes).write(to: URL(fileURLWithPath: file))

        // Refused: exit 1, log_corrupt naming the file, nothing changed.
        let refused = try Daemon.launch(config: c.configPath, id: 1, log: c.logPath(1))
        #expect(Harness.eventually(timeout: 30) { !refused.isRunning })
        refused.waitUntilExit()
        #expect(refused.terminationStatus == 1)
        #expect(c.log(1).contains("event=log_corrupt node=1 file=\(file) offset="), "\(c.log(1).suffix(1500))")
        #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: file))) == bytes)

        // Repaired while nodes 2 and 3 have a leader; it catches up from node 3.
        let repaired = try Daemon.launch(config: c.configPath, id: 1, extraArgs: ["--repair"], log: c.logPath(1))
        defer {
            kill(repaired.processIdentifier, SIGKILL)
            repaired.waitUntilExit()
        }
        #expect(Harness.eventually(timeout: 30) { c.status(1)?["leader"] == "3" })
        // The leader catches a follower up with its next round.
        #expect(Harness.eventually(timeout: 30) { (try? client.request("ENQUEUE after-repair"))?.hasPrefix("OK ") == true })
        ok.append("after-repair")
        #expect(Harness.eventually(timeout: 60) {
            guard let s1 = c.status(1), let s3 = c.status(3) else { return false }
            return s1["leader"] == "3" && commit(s1) != nil && commit(s1) == commit(s3)
        }, "node 1 never caught up")
        c.kill9(3)
        _ = try #require(c.awaitAgreement(on: 2, among: [1, 2], timeout: 60))
        let drained = try drain(c, at: 2)
        let lost = Set(ok).subtracting(drained)
        #expect(lost.isEmpty, "\(lost.count) acknowledged tasks lost, e.g. \(lost.sorted().prefix(5))")
    }

    @Test func aWipedNodeParksUnderNewSequencesAndNothingIsDroppedAsADuplicate() throws {
        let c = Cluster(name: "wiped-mailbox",
                        cluster: "heartbeat_interval_ms = 50\nleader_timeout_ms = 400\nelection_timeout_ms = 200\ncommit_timeout_ms = 500")
        try c.start()
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        func park(_ payload: String) throws -> UInt64 {
            let r = try LineClient(host: "127.0.0.1", port: c.clientPorts[1]!, timeoutMs: 30_000).request("ENQUEUE \(payload)")
            let w = r.split(separator: " ")
            guard w.count == 3, w[0] == "QUEUED", w[1].hasPrefix("1-"), let seq = UInt64(w[1].dropFirst(2)) else {
                throw HarnessError("expected QUEUED 1-<seq>, got \(r)")
            }
            return seq
        }
        func delivered() -> Bool { Harness.eventually(timeout: 30) { c.status(1)?["mailbox"] == "0" } }

        c.kill9(3)
        c.kill9(2)
        let first = try park("before-wipe")
        try c.start([2, 3])
        #expect(delivered(), "first parked task never delivered: \(c.status(1) ?? [:])")

        // Node 1 loses its data_dir and comes back alone: it cannot learn what was applied.
        for id in [1, 2, 3] { c.kill9(id) }
        try FileManager.default.removeItem(atPath: c.dir + "/1")
        try c.start([1])
        let second = try park("after-wipe")
        #expect(second > first, "sequence \(second) reused after a wipe (first was \(first))")
        try c.start([2, 3])
        #expect(delivered(), "second parked task never delivered: \(c.status(1) ?? [:])")
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        let got = try drain(c, at: 3)
        #expect(got.sorted() == ["after-wipe", "before-wipe"], "got \(got)")
    }

    /// A lost vote file is not "never voted": a node whose data_dir shows it
    /// had one refuses to start until the operator writes a safe vote back.
    @Test func aLostVoteFileIsRefusedUntilAVoteIsWrittenBack() throws {
        let c = Cluster(name: "lost-vote")
        try c.start()
        let epoch = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        let vote = c.dir + "/1/vote"
        #expect(FileManager.default.fileExists(atPath: vote), "every cluster node has a vote file from its first start")
        c.kill9(1)
        try FileManager.default.removeItem(atPath: vote)
        let refused = try Daemon.launch(config: c.configPath, id: 1, log: c.logPath(1))
        #expect(Harness.eventually(timeout: 30) { !refused.isRunning })
        refused.waitUntilExit()
        #expect(refused.terminationStatus == 1)
        #expect(c.log(1).contains("event=recovery_failed node=1 error=\"\(vote) is missing"), "\(c.log(1).suffix(1200))")
        // The operator's way back, as the log line says.
        try "\(epoch + 1) \(epoch)\n".write(toFile: vote, atomically: true, encoding: .utf8)
        try c.start([1])
        #expect(Harness.eventually(timeout: 30) { c.status(1)?["leader"] == "3" }, "\(c.status(1) ?? [:])")
    }
}
