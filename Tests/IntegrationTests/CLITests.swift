// The meshq command line against a real meshqd.
import Foundation
import MeshQClient
import MeshQTestSupport
import Testing

@Suite(.serialized) struct CLITests {
    static var meshqPath: String { CLI.meshqPath }

    private func meshq(_ args: [String], stdin: String? = nil) throws -> (status: Int32, out: String, err: String) {
        let r = try CLI.run(args, stdin: stdin)
        return (r.status, r.out, r.err)
    }

    @Test func enqueueWorkStatusRoundTrip() throws {
        let d = try Daemon(name: "cli").start()
        let nodes = "127.0.0.1:\(d.clientPort)"
        let one = try meshq(["enqueue", "--nodes", nodes, "-v", "hello", "world"])
        #expect(one.status == 0)
        #expect(one.out.hasPrefix("OK 1 "))
        #expect(one.err.contains("lamport="))
        let many = try meshq(["enqueue", "--nodes", nodes, "-"], stdin: "a\nb\n\nc\n")
        #expect(many.status == 0)
        #expect(many.out.split(separator: "\n").map { $0.split(separator: " ")[1] } == ["2", "3", "4"])

        let dir = Harness.tempDir("work")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Task 1 is done by the command; "b" makes it fail (NACK), so b comes back.
        let w = try meshq(["work", "--nodes", nodes, "--count", "3", "--wait-ms", "1000",
                           "--exec", "read x; echo \"$x\" >> \(dir)/done; [ \"$x\" != b ]"])
        #expect(w.status == 0, "\(w.err)")
        let done = try String(contentsOfFile: dir + "/done", encoding: .utf8)
        #expect(done == "hello world\na\nb\n")
        let st = try meshq(["status", "--nodes", nodes])
        #expect(st.status == 0)
        let header = st.out.split(separator: "\n")[0].split(separator: " ").map(String.init)
        let row = st.out.split(separator: "\n")[1].split(separator: " ").map(String.init)
        let col = Dictionary(uniqueKeysWithValues: zip(header, row))
        #expect(col["role"] == "leader")
        #expect(col["ready"] == "2")      // b (nacked) and c
        #expect(col["inflight"] == "0")
        let c = try d.client()
        #expect(try c.request("DEQUEUE").hasSuffix(" b"))
    }

    @Test func failuresAndUsageHaveTheirExitCodes() throws {
        let port = Harness.freePort()
        let down = try meshq(["enqueue", "--nodes", "127.0.0.1:\(port)", "x"])
        #expect(down.status == 1)
        #expect(down.err.contains("no node reachable"))
        // Pipelined: each line says it was not sent, and the run stops.
        let downMany = try meshq(["enqueue", "--nodes", "127.0.0.1:\(port)", "-"], stdin: "a\n\nb\n")
        #expect(downMany.status == 1)
        #expect(downMany.out.split(separator: "\n").map { $0.hasPrefix("NOTSENT no node reachable") } == [true, true])
        #expect(downMany.err.contains("meshq: line 3 'b': not enqueued (no node reachable"), "\(downMany.err)")
        #expect(downMany.err.contains("no node could take line 1"), "\(downMany.err)")
        #expect(try meshq(["enqueue"]).status == 2)
        #expect(try meshq(["bench", "--connections", "0"]).status == 2)
        let st = try meshq(["status", "--nodes", "127.0.0.1:\(port)"])
        #expect(st.status == 1 && st.out.contains("down"))
    }

    @Test func busyIsAFinalRefusalNotAnUnknownOutcome() throws {
        // 1 MiB of queued payload at most: the second 600 kB task is refused.
        let d = try Daemon(name: "cli-busy", cluster: "max_memory_mb = 1\nmax_payload_bytes = 700000").start()
        let nodes = "127.0.0.1:\(d.clientPort)"
        let big = String(repeating: "p", count: 600_000)
        let busy = try meshq(["enqueue", "--nodes", nodes, "-"], stdin: "\(big)\n\(big)\n")
        #expect(busy.status == 1)
        let out = busy.out.split(separator: "\n")
        #expect(out.count == 2 && out[0].hasPrefix("OK 1 ") && out[1].hasPrefix("ERR BUSY "), "\(busy.out)")
        #expect(!busy.err.contains("unknown"), "\(busy.err)")
        let s = try d.client().request("STATUS")
        #expect(s.contains(" ready=1 "), "\(s)")
    }

    @Test func benchVerifiesEveryPayloadAgainstARealNode() throws {
        let d = try Daemon(name: "bench").start()
        let r = try meshq(["bench", "--nodes", "127.0.0.1:\(d.clientPort)", "--messages", "2000",
                           "--connections", "4", "--pipeline", "8", "--payload-bytes", "64"])
        #expect(r.status == 0, "\(r.out)\(r.err)")
        #expect(r.out.contains("| Enqueue | 2000 | 4x8 |"))
        #expect(r.out.contains("| Dequeue+Ack | 2000 | 4x8 |"))
        #expect(r.out.contains("verified: 2000 enqueued, 2000 drained exactly once"))
        #expect(try d.client().request("STATUS").contains(" ready=0 inflight=0 "))
    }

    @Test func benchOnALocalThreeNodeClusterVerifiesItsOwnWork() throws {
        // Connections spread over the three nodes: two thirds go through a
        // follower's relay, and every payload must still drain exactly once.
        let r = try meshq(["bench", "--local", "3", "--meshqd", Harness.meshqdPath, "--messages", "2000",
                           "--connections", "6", "--pipeline", "8", "--payload-bytes", "64"])
        #expect(r.status == 0, "\(r.out)\(r.err)")
        #expect(r.out.contains("| Enqueue | 2000 | 6x8 |"))
        #expect(r.out.contains("local 3-node cluster"))
        #expect(r.out.contains("verified: 2000 enqueued, 2000 drained exactly once"))
    }

    @Test func workKeepsGoingThroughALeaderFailover() throws {
        let c = Cluster(name: "cli-failover")
        try c.start()
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        let nodes = c.ids.map { "127.0.0.1:\(c.clientPorts[$0]!)" }.joined(separator: ",")
        let jobs = (1...40).map { "job-\($0)" }
        let enq = try meshq(["enqueue", "--nodes", nodes, "-"], stdin: jobs.joined(separator: "\n") + "\n")
        #expect(enq.status == 0, "\(enq.err)")

        // A worker whose tasks take a moment, so the leader dies mid-run.
        let out = c.dir + "/done.txt"
        try #require(FileManager.default.createFile(atPath: out, contents: nil), "cannot create \(out)")
        let worker = Process()
        worker.executableURL = URL(fileURLWithPath: Self.meshqPath)
        worker.arguments = ["work", "--nodes", nodes, "--wait-ms", "200",
                            "--exec", "sleep 0.05; cat >> \(out); echo >> \(out)"]
        worker.standardOutput = FileHandle.nullDevice
        worker.standardError = FileHandle.nullDevice
        try worker.run()
        defer { if worker.isRunning { worker.terminate() } }
        func done() -> Set<String> {
            Set(((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init))
        }
        #expect(Harness.eventually(timeout: 60) { done().count >= 10 })
        c.kill9(3)
        // Every task is processed at least once (a lease lost with the leader
        // is delivered again by the next one).
        let all = Harness.eventually(timeout: 60) { done().isSuperset(of: jobs) }
        #expect(all, "never processed: \(Set(jobs).subtracting(done()).sorted())")
        // Ctrl-C ends the worker between tasks, with status 0.
        kill(worker.processIdentifier, SIGINT)
        worker.waitUntilExit()
        #expect(worker.terminationStatus == 0)
        // ...and every task was acked: nothing is ready or leased at the new leader.
        let drained = Harness.eventually(timeout: 30) {
            guard let s = c.status(2) else { return false }
            return s["role"] == "leader" && s["ready"] == "0" && s["inflight"] == "0" && s["tasks"] == "0"
        }
        #expect(drained, "left at node 2: \(c.status(2) ?? [:])")
    }
}
