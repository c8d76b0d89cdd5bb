// meshq's protocol-2 commands against real meshqd processes: put (queue,
// priority, delay, keys, stdin with --key auto), work over several queues
// with the lease kept by TOUCH while the command runs, --bury-status and
// --retry-delay, stats, peek, kick and pause; the usage checks (exit 2) and a
// server ERR (exit 1); and, on a three-node cluster whose followers are
// frozen, keyed PUTs sent again after NOQUORUM and stored once.
import Foundation
import Glibc
import MeshQClient
import MeshQTestSupport
import Testing

@Suite(.serialized) struct CLIQueueTests {
    private func meshq(_ args: [String], stdin: String? = nil) throws -> CLI.Result {
        try CLI.run(args, stdin: stdin)
    }

    private func stat(_ line: String, _ key: String) -> String? {
        line.split(separator: " ").first { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
    }

    private func stats(_ c: LineClient, _ q: String) throws -> String { try c.request("STATS \(q)") }

    /// The fields of a JOB reply.
    private struct WorkJob {
        let id: String, queue: String, deliveries: Int, payload: String
        init?(_ line: String) {
            guard let j = jobFields(line) else { return nil }
            (id, queue, deliveries, payload) = ("\(j.id)", j.queue, j.deliveries, j.payload)
        }
    }

    /// `OK <id> <lamport>[ dup]` -> id.
    private func id(_ reply: Substring) -> String? {
        let p = reply.split(separator: " ")
        return p.count >= 3 && p[0] == "OK" ? String(p[1]) : nil
    }

    @Test func putWithQueuePriorityDelayAndKeys() throws {
        let d = try Daemon(name: "cli-put").start()
        let nodes = ["--nodes", "127.0.0.1:\(d.clientPort)"]
        let low = try meshq(["put"] + nodes + ["--queue", "emails", "--pri", "5", "low", "one"])
        #expect(low.status == 0 && low.out.hasPrefix("OK "), "\(low.out)\(low.err)")
        #expect(try meshq(["put"] + nodes + ["--queue", "emails", "--pri", "1", "high"]).status == 0)
        #expect(try meshq(["put"] + nodes + ["--queue", "emails", "--delay", "600000", "later"]).status == 0)
        let c = try d.client()
        let s = try stats(c, "emails")
        #expect(stat(s, "ready") == "2" && stat(s, "delayed") == "1", "\(s)")
        // The lower priority first; the words of the payload joined by spaces.
        let peek = try meshq(["peek"] + nodes + ["emails"])
        #expect(peek.status == 0 && peek.out.hasSuffix(" high\n"), "\(peek.out)")
        #expect(try c.request("TAKE emails").hasSuffix(" emails 1 high"))
        #expect(try c.request("TAKE emails").hasSuffix(" emails 1 low one"))
        // Without --queue: the queue default (what DEQUEUE serves).
        #expect(try meshq(["put"] + nodes + ["plain"]).status == 0)
        #expect(try c.request("DEQUEUE").hasSuffix(" plain"))

        // A key put twice: the second answers the first id, marked dup.
        let first = try meshq(["put"] + nodes + ["--queue", "orders", "--key", "order:42", "charge"])
        let again = try meshq(["put"] + nodes + ["--queue", "orders", "--key", "order:42", "charge", "again"])
        #expect(first.status == 0 && again.status == 0, "\(first.err)\(again.err)")
        let f = first.out.split(separator: "\n"), a = again.out.split(separator: "\n")
        #expect(f.count == 1 && !f[0].hasSuffix(" dup"), "\(first.out)")
        #expect(a.count == 1 && a[0].hasSuffix(" dup") && id(a[0]) == id(f[0]), "\(again.out)")
        #expect(stat(try stats(c, "orders"), "ready") == "1")
        // --key auto with one payload: a fresh key each run, so two tasks.
        for _ in 1...2 {
            let r = try meshq(["put"] + nodes + ["--queue", "auto1", "--key", "auto", "same"])
            #expect(r.status == 0 && !r.out.contains("dup"), "\(r.out)")
        }
        #expect(stat(try stats(c, "auto1"), "ready") == "2")
    }

    @Test func putFromStdinWithAutoKeysMakesOneTaskPerLine() throws {
        let d = try Daemon(name: "cli-put-stdin").start()
        let nodes = ["--nodes", "127.0.0.1:\(d.clientPort)"]
        // Two equal lines are two tasks (the key is the line, not the content).
        let input = "same\nsame\n\nother\n"
        let r = try meshq(["put"] + nodes + ["--queue", "lines", "--key", "auto", "--pri", "7", "-"], stdin: input)
        #expect(r.status == 0, "\(r.err)")
        let out = r.out.split(separator: "\n")
        #expect(out.count == 3 && out.allSatisfy { $0.hasPrefix("OK ") && !$0.hasSuffix(" dup") }, "\(r.out)")
        #expect(Set(out.compactMap(id)).count == 3, "\(r.out)")
        // Another run has another run id: its keys are new too.
        let r2 = try meshq(["put"] + nodes + ["--queue", "lines", "--key", "auto", "--pri", "1", "-"], stdin: input)
        let out2 = r2.out.split(separator: "\n")
        #expect(r2.status == 0 && out2.count == 3 && !r2.out.contains("dup"), "\(r2.out)")
        let c = try d.client()
        #expect(stat(try stats(c, "lines"), "ready") == "6")
        // --pri applies to every line: the second run's (1) come before the first's (7).
        let first = try #require(WorkJob(try c.request("TAKE lines")))
        #expect(first.id == out2.first.flatMap(id) && first.payload == "same")
        // A fixed key would make every line after the first a dup: refused.
        let fixed = try meshq(["put"] + nodes + ["--key", "k1", "-"], stdin: "a\nb\n")
        #expect(fixed.status == 2 && fixed.err.contains("--key auto"), "\(fixed.err)")
    }

    @Test func badUsageIsExit2AndAServerErrorIsExit1() throws {
        let d = try Daemon(name: "cli-usage", cluster: "max_payload_bytes = 16").start()
        let nodes = ["--nodes", "127.0.0.1:\(d.clientPort)"]
        let bad: [([String], String)] = [
            (["put", "--queue", "bad/queue", "x"], "queue 'bad/queue' must be 1-64 bytes"),
            (["put", "--queue", String(repeating: "q", count: 65), "x"], "must be 1-64 bytes"),
            (["put", "--pri", "4294967296", "x"], "--pri must be from 0 to 4294967295"),
            (["put", "--delay=-5", "x"], "--delay must be from 0"),
            (["put", "--delay", "31536000001", "x"], "--delay must be from 0 to 31536000000"),
            (["put", "--key", String(repeating: "k", count: 129), "x"], "--key"),
            (["put", "--key", "a b", "x"], "[A-Za-z0-9._:/-]"),
            (["put"], "a payload is required"),
            (["work", "--queue", "a,,b"], "queue '' must be"),
            (["work", "--bury-status", "3"], "--bury-status needs --exec"),
            (["work", "--exec", "true", "--bury-status", "0"], "--bury-status must be an exit status from 1 to 255"),
            (["work", "--exec", "true", "--retry-delay", "abc"], "--retry-delay must be MS or MS,BACKOFF"),
            (["work", "--exec", "true", "--retry-delay", "100,0.5"], "BACKOFF must be a number of at least 1"),
            (["work", "--exec", "true", "--lease-ms", "50"], "--lease-ms must be from 100"),
            (["stats", "no/such"], "must be 1-64 bytes"),
            (["peek"], "Missing expected argument"),
            (["kick", "jobs.dead", "4294967296"], "the count must be from 0 to 4294967295"),
            (["pause", "q", "31536000001"], "the pause must be from 0 to 31536000000"),
        ]
        for (args, message) in bad {
            let r = try meshq([args[0]] + nodes + args.dropFirst())
            #expect(r.status == 2, "\(args): \(r.status) \(r.out) \(r.err)")
            #expect(r.err.contains(message), "\(args): \(r.err)")
        }
        // Nothing of that reached the server.
        #expect(try d.client().request("STATS") == "END")
        // The server refuses a payload over max_payload_bytes: printed, exit 1.
        let big = try meshq(["put"] + nodes + [String(repeating: "p", count: 40)])
        #expect(big.status == 1 && big.out.hasPrefix("ERR "), "\(big.out)")
    }

    @Test func workTakesFromTheListedQueuesInOrderWithTheTaskInItsEnvironment() throws {
        let d = try Daemon(name: "cli-work-queues").start()
        let c = try d.client()
        #expect(try c.request("PUT b - from-b").hasPrefix("OK 1 "))
        #expect(try c.request("PUT a - from-a").hasPrefix("OK 2 "))
        #expect(try c.request("PUT c - from-c").hasPrefix("OK 3 "))
        let dir = Harness.tempDir("cli-work-queues")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try meshq(["work", "--nodes", "127.0.0.1:\(d.clientPort)", "--queue", "a,b", "--count", "2", "--wait-ms", "1000",
                           "-v", "--exec", "echo \"$MESHQ_QUEUE $MESHQ_TASK_ID $MESHQ_DELIVERIES $(cat)\" >> \(dir)/done"])
        #expect(r.status == 0, "\(r.err)")
        #expect((try? String(contentsOfFile: dir + "/done", encoding: .utf8)) == "a 2 1 from-a\nb 1 1 from-b\n")
        #expect(r.err.contains("task=2 acked exit=0"), "\(r.err)")
        for q in ["a", "b"] {
            let s = try stats(c, q)
            #expect(stat(s, "ready") == "0" && stat(s, "inflight") == "0", "\(s)")
        }
        #expect(stat(try stats(c, "c"), "ready") == "1")   // not listed, not taken
    }

    @Test func aCommandRunningPastItsLeaseIsTouchedAndNotDeliveredAgain() throws {
        // The queue's own lease is 300 ms: a task left alone is delivered again.
        let d = try Daemon(name: "cli-touch", sections: "[queue.slow]\nack_timeout_ms = 300").start()
        let c = try d.client(), other = try d.client()
        #expect(try c.request("PUT slow - long job").hasPrefix("OK 1 "))
        #expect(try c.request("TAKE slow").hasPrefix("JOB 1 "))
        // Control: the untouched lease runs out, and a waiting TAKE gets it again.
        #expect(try other.request("TAKE slow 10000").hasSuffix(" slow 2 long job"))
        #expect(try other.request("NACK 1").hasPrefix("OK 1 "))

        let dir = Harness.tempDir("cli-touch")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = try CLI.start(["work", "--nodes", "127.0.0.1:\(d.clientPort)", "--queue", "slow", "--count", "1",
                                 "--wait-ms", "1000", "--lease-ms", "400", "-v", "--exec",
                                 "cat > /dev/null; touch \(dir)/started; while [ ! -e \(dir)/go ]; do sleep 0.05; done"])
        #expect(Harness.eventually(timeout: 30) { FileManager.default.fileExists(atPath: dir + "/started") })
        // While the command runs for several leases (of the queue's and of
        // --lease-ms), the task stays leased: nobody else is handed it.
        var polls = 0
        var handedOut: [String] = []
        let touchedEnough = Harness.eventually(timeout: 30) {
            polls += 1
            if let r = try? other.request("TAKE slow"), r != "EMPTY" { handedOut.append(r) }
            return run.err.components(separatedBy: "task=1 touched lease_ms=400").count - 1 >= 5
        }
        #expect(touchedEnough, "\(run.err)")
        #expect(handedOut.isEmpty, "delivered again while its command ran: \(handedOut)")
        #expect(polls > 10)
        let s = try stats(other, "slow")
        #expect(stat(s, "inflight") == "1" && stat(s, "ready") == "0", "\(s)")
        _ = FileManager.default.createFile(atPath: dir + "/go", contents: nil)
        let r = run.wait()
        #expect(r.status == 0, "\(r.err)")
        #expect(r.err.contains("task=1 acked exit=0 touches="), "\(r.err)")
        #expect(r.err.contains("deliveries=3"), "\(r.err)")
        #expect(!r.err.contains("lease is gone"), "\(r.err)")
        let after = try stats(other, "slow")
        #expect(stat(after, "inflight") == "0" && stat(after, "ready") == "0", "\(after)")
    }

    @Test func buryStatusBuriesAndKickBringsItBack() throws {
        let d = try Daemon(name: "cli-bury").start()
        let nodes = ["--nodes", "127.0.0.1:\(d.clientPort)"]
        let c = try d.client()
        #expect(try c.request("PUT jobs - poison").hasPrefix("OK 1 "))
        #expect(try c.request("PUT jobs - flaky").hasPrefix("OK 2 "))
        // Status 7 buries; status 3 (not the bury status) nacks.
        let r = try meshq(["work"] + nodes + ["--queue", "jobs", "--count", "2", "--wait-ms", "1000", "-v", "--bury-status", "7",
                                              "--exec", "[ \"$(cat)\" = flaky ] && exit 3; exit 7"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.err.contains("task=1 buried exit=7"), "\(r.err)")
        #expect(r.err.contains("task=2 nacked exit=3"), "\(r.err)")
        let s = try stats(c, "jobs")
        #expect(stat(s, "dead") == "1" && stat(s, "ready") == "1" && stat(s, "inflight") == "0", "\(s)")
        #expect(try c.request("PEEK jobs.dead").hasSuffix(" poison"))

        // stats: a header and one row per queue.
        let st = try meshq(["stats"] + nodes)
        #expect(st.status == 0, "\(st.err)")
        let rows = st.out.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(rows.first == ["queue", "ready", "delayed", "inflight", "dead", "paused_ms", "oldest_ready_ms"], "\(st.out)")
        #expect(rows.contains { $0.prefix(5) == ["jobs", "1", "0", "0", "1"] }, "\(st.out)")
        #expect(rows.contains { $0.prefix(2) == ["jobs.dead", "1"] }, "\(st.out)")
        let one = try meshq(["stats"] + nodes + ["jobs.dead"])
        #expect(one.status == 0 && one.out.split(separator: "\n").count == 2, "\(one.out)")

        let kick = try meshq(["kick"] + nodes + ["jobs.dead", "5"])
        #expect(kick.status == 0 && kick.out == "OK 1\n", "\(kick.out)\(kick.err)")
        #expect(try meshq(["kick"] + nodes + ["jobs.dead"]).out == "OK 0\n")
        let after = try stats(c, "jobs")
        #expect(stat(after, "dead") == "0" && stat(after, "ready") == "2", "\(after)")
        let peek = try meshq(["peek"] + nodes + ["jobs.dead"])
        #expect(peek.status == 0 && peek.out == "EMPTY\n")
    }

    @Test func retryDelayNacksWithABackoffCappedAt365Days() throws {
        let d = try Daemon(name: "cli-retry").start()
        let c = try d.client()
        #expect(try c.request("PUT retry - fails").hasPrefix("OK 1 "))
        // 100 ms after the first delivery; 100*10^9 ms (capped) after the second.
        let r = try meshq(["work", "--nodes", "127.0.0.1:\(d.clientPort)", "--queue", "retry", "--count", "2",
                           "--wait-ms", "10000", "-v", "--retry-delay", "100,1000000000", "--exec", "cat > /dev/null; exit 3"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.err.contains("task=1 nacked exit=3 delay_ms=100 "), "\(r.err)")
        #expect(r.err.contains("task=1 nacked exit=3 delay_ms=31536000000 "), "\(r.err)")
        #expect(r.err.contains("queue=retry deliveries=2 "), "\(r.err)")
        let s = try stats(c, "retry")
        #expect(stat(s, "delayed") == "1" && stat(s, "ready") == "0" && stat(s, "inflight") == "0", "\(s)")
        #expect(try c.request("TAKE retry") == "EMPTY")
    }

    @Test func pauseHoldsAQueueAndZeroResumesIt() throws {
        let d = try Daemon(name: "cli-pause").start()
        let nodes = ["--nodes", "127.0.0.1:\(d.clientPort)"]
        let c = try d.client()
        #expect(try meshq(["put"] + nodes + ["--queue", "held", "x"]).status == 0)
        let p = try meshq(["pause"] + nodes + ["held", "600000"])
        #expect(p.status == 0 && p.out == "OK\n", "\(p.out)\(p.err)")
        #expect(try c.request("TAKE held") == "EMPTY")
        #expect(stat(try stats(c, "held"), "paused_ms").flatMap(Int.init).map { $0 > 500_000 } == true)
        let st = try meshq(["stats"] + nodes + ["held"])
        #expect(st.out.split(separator: "\n").last?.split(separator: " ").prefix(2) == ["held", "1"], "\(st.out)")
        #expect(try meshq(["pause"] + nodes + ["held", "0"]).status == 0)
        #expect(try c.request("TAKE held").hasSuffix(" held 1 x"))
    }

    @Test func keyedPutsAreSentAgainAfterNoquorumAndStoredOnce() throws {
        // The followers frozen, the leader's PUTs end NOQUORUM (outcome
        // unknown); with keys they are sent again until the followers thaw.
        let c = Cluster(name: "cli-key-noquorum", cluster: UnknownOutcomeTests.timings)
        try c.start()
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        try c.awaitServing(3)
        let leader = "127.0.0.1:\(c.clientPorts[3]!)"
        c.sendSignal(SIGSTOP, to: 1)
        c.sendSignal(SIGSTOP, to: 2)
        let one = try CLI.start(["put", "--nodes", leader, "--queue", "keyed", "--key", "k-1", "precious"])
        let many = try CLI.start(["put", "--nodes", leader, "--queue", "keyed", "--key", "auto", "-"], stdin: "same\nsame\nother\n")
        let resent = Harness.eventually(timeout: 30) {
            one.err.contains("outcome unknown at \(leader): ERR NOQUORUM")
                && many.err.components(separatedBy: "sending it again").count - 1 >= 3
        }
        c.sendSignal(SIGCONT, to: 1)
        c.sendSignal(SIGCONT, to: 2)
        let r1 = one.wait(), r2 = many.wait()
        #expect(resent, "\(r1.err)\n\(r2.err)")
        #expect(r1.err.contains("sending it again (it has a key"), "\(r1.err)")
        #expect(r1.status == 0 && r1.out.hasPrefix("OK ") && r1.out.split(separator: "\n").count == 1, "\(r1.out)\(r1.err)")
        let out = r2.out.split(separator: "\n")
        #expect(r2.status == 0 && out.count == 3 && out.allSatisfy { $0.hasPrefix("OK ") }, "\(r2.out)\(r2.err)")
        // Once settled, the leader holds each task once ("same" twice: two lines).
        var leaderId: Int?
        let settled = Harness.eventually(timeout: 60) {
            let s = [1, 2, 3].compactMap { c.status($0) }
            guard s.count == 3, let l = s.first?["leader"], let id = Int(l), s.allSatisfy({ $0["leader"] == l }),
                  c.status(id)?["role"] == "leader" else { return false }
            leaderId = id
            return true
        }
        try #require(settled)
        let conn = try c.client(leaderId!)
        var count: [String: Int] = [:]
        for _ in 0..<20 {
            guard let j = WorkJob(try conn.request("TAKE keyed")) else { break }
            count[j.payload, default: 0] += 1
        }
        #expect(count == ["precious": 1, "same": 2, "other": 1], "\(count)")
    }
}
