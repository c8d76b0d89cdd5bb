// A corrupt follower in a real three-node cluster: it sets the damaged part
// aside and rejoins as a follower that is behind, and it does not vote until
// it holds the leader's log: with the only other node that has the lost
// entries down, the cluster stays without a leader rather than elect one
// that lacks them; once that node is back the corrupt one catches up, and
// then the leader may die: every task answered OK is still delivered. A
// follower whose data_dir was wiped does the same (it cannot tell itself
// from a new node; its peers' logs can). And a node whose data_dir was wiped
// parks new tasks under sequences above the ones the cluster already
// applied from it, so they are delivered, not dropped as duplicates.
import Foundation
import Glibc
import Reactor
import MeshQClient
import MeshQTestSupport
import Testing

@Suite(.serialized) struct StorageClusterTests {
    private func commit(_ s: [String: String]?) -> UInt64? { s?["commit"].flatMap { UInt64($0) } }

    @Test func aCorruptFollowerRejoinsWithoutVotingUntilCaughtUpAndTheLeaderMayDie() throws {
        let c = Cluster(name: "corrupt-follower")
        let ok = try acknowledgedWithoutNode2(c, prefix: "c")

        // A byte flipped in the middle of node 1's log: records it
        // acknowledged are now unreadable.
        let dir = c.dir + "/1"
        let name = try #require(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("log.") }.sorted().last)
        let file = dir + "/" + name
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
        // The file runs on past its last write (space reserved ahead of the
        // writes, left by the kill): the middle of what was written.
        let written = (bytes.lastIndex { $0 != 0 } ?? 0) + 1
        bytes[written / 2] ^= 0x08
        try Data(bytes).write(to: URL(fileURLWithPath: file))

        // Nodes 1 and 2 come back. Node 1 keeps what it can read and sets
        // the rest aside; it must not vote, so node 2 (which never had the
        // tasks) cannot be elected with its vote.
        try c.start([2, 1])
        #expect(Harness.eventually(timeout: 30) { c.log(1).contains("event=rejoin_start node=1") }, "\(c.log(1).suffix(1500))")
        let corrupt = c.log(1).split(separator: "\n").first { $0.contains("event=log_corrupt") }.map(String.init) ?? ""
        #expect(corrupt.contains("file=\(file) offset="), "\(corrupt)")
        #expect(corrupt.contains("moved_to=\(file).corrupt-at-"), "\(corrupt)")
        #expect(FileManager.default.fileExists(atPath: dir + "/rejoining"))
        // For ten leader timeouts, nobody leads (a majority needs node 1).
        expectNoLeaderAmong1And2(c, forSeconds: 4)
        try expectNode1CatchesUpAndNode3MayDie(c, ok: ok)
    }

    /// Node 2 misses everything: 150 tasks are OK'd by nodes 3 and 1 only,
    /// then both go down. Returns the tasks that got OK.
    private func acknowledgedWithoutNode2(_ c: Cluster, prefix: String) throws -> [String] {
        try c.start()
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        c.kill9(2)
        let client = try LineClient(host: "127.0.0.1", port: c.clientPorts[3]!, timeoutMs: 30_000)
        var ok: [String] = []
        for i in 0..<150 where try client.request("ENQUEUE \(prefix)\(i)").hasPrefix("OK ") { ok.append("\(prefix)\(i)") }
        #expect(ok.count == 150)
        let leaderCommit = try #require(commit(c.status(3)))
        #expect(Harness.eventually(timeout: 30) { (commit(c.status(1)) ?? 0) >= leaderCommit })
        c.kill9(1)
        c.kill9(3)
        return ok
    }

    /// Nodes 1 and 2 are up, node 1 catching up: nobody leads for `seconds`.
    private func expectNoLeaderAmong1And2(_ c: Cluster, forSeconds seconds: Double) {
        let until = Date().addingTimeInterval(seconds)
        while Date() < until {
            for id in [1, 2] {
                let leader = c.status(id)?["leader"]
                #expect(leader == nil || leader == "-", "node \(id) follows \(leader ?? "?") while node 1 is catching up")
            }
            usleep(200_000)
        }
    }

    /// Node 3, which holds everything, returns: it leads and node 1 catches
    /// up. Then node 3 may die: nodes 1 and 2 elect node 2, and nothing
    /// that got OK is lost.
    private func expectNode1CatchesUpAndNode3MayDie(_ c: Cluster, ok: [String]) throws {
        try c.start([3])
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3], timeout: 60))
        #expect(Harness.eventually(timeout: 60) { c.log(1).contains("event=rejoined node=1") }, "\(c.log(1).suffix(1500))")
        #expect(Harness.eventually(timeout: 10) { !FileManager.default.fileExists(atPath: c.dir + "/1/rejoining") })
        c.kill9(3)
        _ = try #require(c.awaitAgreement(on: 2, among: [1, 2], timeout: 60))
        let drained = try drain(c, at: 2)
        let lost = Set(ok).subtracting(drained)
        #expect(lost.isEmpty, "\(lost.count) acknowledged tasks lost, e.g. \(lost.sorted().prefix(5))")
    }

    /// Node 1 acknowledged tasks that node 2 never got, then lost its whole
    /// data_dir. Before, it came back as a new node and voted: with node 3
    /// down, nodes 1 and 2 elected node 2, which lacks the tasks.
    @Test func aWipedFollowerDoesNotVoteUntilCaughtUpAndTheLeaderMayDie() throws {
        let c = Cluster(name: "wiped-follower")
        let ok = try acknowledgedWithoutNode2(c, prefix: "w")
        try FileManager.default.removeItem(atPath: c.dir + "/1")
        let earlier = c.log(1).count

        try c.start([2, 1])
        #expect(Harness.eventually(timeout: 30) { c.log(1).contains("event=rejoin_behind node=1") }, "\(c.log(1).suffix(1500))")
        #expect(FileManager.default.fileExists(atPath: c.dir + "/1/rejoining"))
        #expect(!c.log(1).dropFirst(earlier).contains("event=new_cluster"))
        expectNoLeaderAmong1And2(c, forSeconds: 4)
        try expectNode1CatchesUpAndNode3MayDie(c, ok: ok)
    }

    /// A new cluster's nodes all start empty: they find it new among
    /// themselves, and a late third node catches up instead.
    @Test func aNewClusterFormsFromTwoEmptyNodesAndTheThirdCatchesUp() throws {
        let c = Cluster(name: "new-cluster")
        try c.start([1, 2])
        _ = try #require(c.awaitAgreement(on: 2, among: [1, 2], timeout: 30))
        #expect(c.log(1).contains("event=new_cluster node=1") && c.log(2).contains("event=new_cluster node=2"))
        let client = try c.client(2)
        #expect(try client.request("ENQUEUE first").hasPrefix("OK "))
        try c.start([3])
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3], timeout: 60))
        // It caught up first (the leader's answer or a peer's report may come first).
        #expect(c.log(3).contains("event=rejoined node=3") && !c.log(3).contains("event=new_cluster"), "\(c.log(3).suffix(1500))")
        #expect(Harness.eventually(timeout: 30) { !FileManager.default.fileExists(atPath: c.dir + "/3/rejoining") })
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
        // Parked only once node 1 knows it has no leader: an ENQUEUE relayed
        // to the dying leader just before gets NOLEADER (outcome unknown).
        #expect(Harness.eventually(timeout: 30) { c.status(1)?["leader"] == "-" }, "node 1 still names a leader")
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

    /// The leader's disk fills: it answers no OK for what it could not
    /// write, steps down and falls silent; nodes 1 and 2 elect a new leader
    /// and go on serving. When space returns it rebuilds from its disk by
    /// itself (no restart), catches up and, being the highest, leads again;
    /// nothing that got OK is lost.
    @Test func aLeaderWhoseDiskFillsStepsDownAndComesBackWhenSpaceReturns() throws {
        guard getuid() == 0 else {
            print("skipped aLeaderWhoseDiskFillsStepsDownAndComesBackWhenSpaceReturns: mounting a tmpfs needs root")
            return
        }
        let c = Cluster(name: "full-leader")
        let dir3 = c.dir + "/3"
        try FileManager.default.createDirectory(atPath: dir3, withIntermediateDirectories: true)
        guard (try? Harness.run("/bin/mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", dir3]))?.status == 0 else {
            print("skipped aLeaderWhoseDiskFillsStepsDownAndComesBackWhenSpaceReturns: cannot mount a tmpfs")
            return
        }
        defer {
            c.kill9(3)
            _ = try? Harness.run("/bin/umount", [dir3])
        }
        let ballast = dir3 + "/ballast"
        #expect(FileManager.default.createFile(atPath: ballast, contents: Data(count: (4 << 20) - (512 << 10))))
        try c.start()
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))

        // Through node 1 until the leader's disk is full, then on: the
        // cluster moves to node 2 and keeps answering OK.
        let client = try c.client(1)
        var ok: [String] = []
        var refused = 0
        let filler = String(repeating: "x", count: 4_000)
        let deadline = Date().addingTimeInterval(60)
        while ok.filter({ $0.hasPrefix("after-") }).count < 20 && Date() < deadline {
            let full = c.log(3).contains("event=node_stalled node=3 reason=disk_full")
            let p = full ? "after-\(ok.count)" : "f\(ok.count)-" + filler
            if let r = try? client.request("ENQUEUE \(p)"), r.hasPrefix("OK ") { ok.append(p) } else { refused += 1 }
        }
        #expect(ok.filter { $0.hasPrefix("after-") }.count == 20, "the cluster did not go on serving: \(c.log(3).suffix(1500))")
        let stalled = c.log(3).split(separator: "\n").first { $0.contains("event=node_stalled") }.map(String.init) ?? ""
        #expect(stalled.contains("role=leader"), "\(stalled)")
        #expect(c.log(3).contains("errno=ENOSPC"))
        _ = try #require(c.awaitAgreement(on: 2, among: [1, 2], timeout: 30))

        // Space returns: node 3 rebuilds, catches up and takes over again.
        try FileManager.default.removeItem(atPath: ballast)
        #expect(Harness.eventually(timeout: 30) { c.log(3).contains("event=node_resumed node=3") }, "\(c.log(3).suffix(1500))")
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3], timeout: 60))
        let drained = try drain(c, at: 3)
        let lost = Set(ok).subtracting(drained)
        #expect(lost.isEmpty, "\(lost.count) acknowledged tasks lost (\(refused) refused), e.g. \(lost.sorted().prefix(3))")
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
