// Protocol 2 against real three-node clusters (issue 21): a poison task
// whose every worker dies mid-job (kill -9) reaches the dead-letter queue
// after exactly max_deliveries deliveries while other tasks keep flowing;
// delayed tasks survive a kill -9 of the leader and fire on the new one,
// none early and none lost; and a keyed PUT sent again after NOQUORUM makes
// exactly one task.
import Foundation
import Glibc
import MeshQClient
import MeshQTestSupport
import Testing

@Suite(.serialized) struct ProtocolTwoClusterTests {
    // MARK: - Poison task

    /// The worker: a real process (bash, its own TCP connection) that TAKEs
    /// one task, prints the JOB line, and kills itself with SIGKILL before
    /// it ACKs when the payload is `poison`; any other task it ACKs and
    /// prints the reply. Every read has a timeout, so it always ends.
    static let worker = """
        exec 3<>/dev/tcp/127.0.0.1/$1 || exit 2
        printf 'TAKE %s %s\\n' "$2" "$3" >&3
        IFS= read -r -t 20 line <&3 || exit 3
        printf '%s\\n' "$line"
        case "$line" in
          "JOB "*" poison") kill -9 $$ ;;
          "JOB "*) set -- $line; printf 'ACK %s\\n' "$2" >&3
                   IFS= read -r -t 20 ack <&3 || exit 4
                   printf '%s\\n' "$ack" ;;
        esac
        """

    /// Runs one worker process against node `node` to the end; returns the
    /// lines it printed and whether SIGKILL ended it.
    private func runWorker(_ c: Cluster, node: Int, queue: String, waitMs: Int) throws -> (lines: [String], killed: Bool) {
        let out = c.dir + "/worker.out"
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        let fh = try #require(FileHandle(forWritingAtPath: out))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = ["-c", Self.worker, "worker", "\(c.clientPorts[node]!)", queue, "\(waitMs)"]
        p.standardOutput = fh
        p.standardError = fh
        try p.run()
        p.waitUntilExit()
        try fh.close()
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        let killed = p.terminationReason == .uncaughtSignal && p.terminationStatus == SIGKILL
        return (text.split(separator: "\n").map(String.init), killed)
    }

    @Test func aPoisonTaskIsDeadLetteredAfterMaxDeliveriesWhileOtherTasksFlow() throws {
        let c = Cluster(name: "p2c-poison", sections: "[queue.jobs]\nmax_deliveries = 3\nack_timeout_ms = 300")
        try c.start()
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        let producer = try c.client(1)        // a follower: every PUT is relayed
        let stats = try c.client(2)
        // Priority 0: whenever the poison task is ready, a TAKE gets it first.
        let poison = try #require(okReply(try producer.request("PUT jobs pri=0 poison"))?.id)
        var poisonJobs: [Int] = []            // the deliveries count of each JOB of the poison task from `jobs`
        var others: [String: Int] = [:]       // payload -> JOBs received
        var put: [String] = [], acked: [String] = [], problems: [String] = []
        var killed = 0, dead = false, drained = false
        // Each round puts one more task (until the poison one is dead) and
        // runs one worker, on the nodes in turn; bounded by count.
        for round in 0..<80 where !drained {
            if !dead {
                let payload = "other-\(round)"
                let r = try producer.request("PUT jobs - \(payload)")
                if okReply(r) == nil { problems.append("PUT \(payload): \(r)") } else { put.append(payload) }
            }
            let w = try runWorker(c, node: [3, 1, 2][round % 3], queue: "jobs", waitMs: 2_000)
            if w.killed { killed += 1 }
            guard let first = w.lines.first else {
                problems.append("worker printed nothing")
                continue
            }
            if let j = jobFields(first) {
                if j.id == poison {
                    poisonJobs.append(j.deliveries)
                    if !w.killed { problems.append("the poison worker was not killed: \(w.lines)") }
                } else {
                    others[j.payload, default: 0] += 1
                    if j.deliveries != 1 { problems.append("\(first): redelivered") }
                    if w.lines.count == 2, okReply(w.lines[1])?.id == j.id { acked.append(j.payload) } else {
                        problems.append("ACK of \(first): \(w.lines.dropFirst())")
                    }
                }
            } else if first == "EMPTY" {
                drained = dead && acked.count == put.count
            } else {
                problems.append("TAKE jobs: \(first)")
            }
            let s = try stats.request("STATS jobs")
            dead = dead || statsField(s, "dead") == "1"
        }
        #expect(problems.isEmpty, "\(problems)")
        #expect(dead && drained, "dead=\(dead) drained=\(drained) poison JOBs \(poisonJobs), acked \(acked.count) of \(put.count)")
        // Exactly max_deliveries leases, numbered 1, 2, 3, each ended by a kill -9; no 4th.
        #expect(poisonJobs == [1, 2, 3], "\(poisonJobs)")
        #expect(killed == 3)
        // The other tasks flowed meanwhile: each put one delivered once and acked.
        #expect(put.count >= 3 && Set(acked) == Set(put) && acked.count == put.count, "put \(put) acked \(acked)")
        #expect(others.values.allSatisfy { $0 == 1 }, "\(others)")
        #expect(statsField(try stats.request("STATS jobs"), "ready") == "0")
        let deadJob = try #require(jobFields(try stats.request("TAKE jobs.dead")))
        // Its lease from the dead-letter queue is its 4th delivery: the count goes on.
        #expect(deadJob.id == poison && deadJob.queue == "jobs.dead" && deadJob.deliveries == 4 && deadJob.payload == "poison",
                "\(deadJob)")
        let logged = c.log(3).split(separator: "\n").contains {
            $0.contains("event=task_dead_lettered") && $0.contains("task=\(poison) ") && $0.contains("deliveries=3")
        }
        #expect(logged, "no task_dead_lettered line for task \(poison) in the leader's log")
    }

    // MARK: - Delays across a failover

    @Test func delayedTasksFireOnTheNewLeaderNoneEarlyNoneLost() throws {
        let c = Cluster(name: "p2c-delay")
        try c.start()
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        let leader = try c.client(3)
        var sentAt: [String: Date] = [:], okAt: [String: Date] = [:], delay: [String: Int] = [:]
        for i in 0..<8 {
            let payload = "later-\(i)", ms = 1_500 + 200 * i
            let t0 = Date()
            let r = try leader.request("PUT later delay=\(ms) \(payload)")
            okAt[payload] = Date()
            try #require(okReply(r) != nil, "PUT \(payload): \(r)")
            sentAt[payload] = t0
            delay[payload] = ms
        }
        let before = try leader.request("STATS later")
        #expect(statsField(before, "delayed") == "8" && statsField(before, "ready") == "0", "\(before)")
        // The follower that takes over: its Cristian offset to the old leader
        // is all the skew there is (one host, one clock).
        let offset = c.status(2)?["offset_ms"].flatMap(Double.init) ?? 0
        c.kill9(3)
        _ = try #require(c.awaitAgreement(on: 2, among: [1, 2]))
        let consumer = try LineClient(host: "127.0.0.1", port: c.clientPorts[2]!, timeoutMs: 30_000)
        var arrived: [String: Date] = [:], deliveries: [String: Int] = [:], problems: [String] = []
        let deadline = Date().addingTimeInterval(60)
        var tries = 0
        while arrived.count < 8, tries < 400, Date() < deadline {
            tries += 1
            let r = try consumer.request("TAKE later 500")
            if let j = jobFields(r) {
                let now = Date()
                deliveries[j.payload, default: 0] += 1
                if arrived[j.payload] == nil { arrived[j.payload] = now }
                let a = try consumer.request("ACK \(j.id)")
                if okReply(a)?.id != j.id { problems.append("ACK \(j.id): \(a)") }
            } else if r != "EMPTY", !transient(r) {
                problems.append("TAKE later: \(r)")
            }
        }
        #expect(problems.isEmpty, "\(problems)")
        #expect(Set(arrived.keys) == Set(delay.keys), "lost: \(Set(delay.keys).subtracting(arrived.keys).sorted())")
        #expect(deliveries.values.allSatisfy { $0 == 1 }, "\(deliveries)")
        // A delay counts from when the leader took the PUT, between its send
        // and its OK, so a JOB may not come before send + delay. Tolerance:
        // the new leader's clock offset as it measured it (true offset 0),
        // plus 20 ms for its error (half a loopback round trip).
        let tolerance = abs(offset) / 1000 + 0.020
        for (payload, at) in arrived {
            let due = sentAt[payload]!.addingTimeInterval(Double(delay[payload]!) / 1000)
            #expect(at.timeIntervalSince(due) >= -tolerance,
                    "\(payload) (delay \(delay[payload]!) ms) came \(due.timeIntervalSince(at) * 1000) ms early; its PUT took \(okAt[payload]!.timeIntervalSince(sentAt[payload]!) * 1000) ms")
        }
        #expect(try consumer.request("TAKE later") == "EMPTY")
    }

    // MARK: - A keyed PUT after NOQUORUM

    @Test func aKeyedPutSentAgainAfterNoquorumMakesOneTask() throws {
        // A long leader_timeout_ms keeps the frozen followers "up", so the
        // leader runs its round and gives up after commit_timeout_ms.
        let c = Cluster(name: "p2c-key", cluster: """
            heartbeat_interval_ms = 50
            leader_timeout_ms = 5000
            election_timeout_ms = 200
            commit_timeout_ms = 500
            """)
        try c.start()
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        try c.awaitServing(3)
        let line = "PUT orders key=order:7 charge order 7"
        let leader = try c.client(3)
        c.sendSignal(SIGSTOP, to: 1)
        c.sendSignal(SIGSTOP, to: 2)
        let first = try leader.request(line)
        c.sendSignal(SIGCONT, to: 1)
        c.sendSignal(SIGCONT, to: 2)
        #expect(first.hasPrefix("ERR NOQUORUM ") || (first.hasPrefix("ERR NOLEADER ") && first.contains("may have been applied")),
                "\(first)")
        // Sent again, to each node in turn, until a node answers OK.
        var clients: [Int: LineClient] = [3: leader]
        var retry: (id: UInt64, lamport: UInt64, dup: Bool)?
        var replies: [String] = []
        for n in 0..<300 where retry == nil {
            let node = [3, 1, 2][n % 3]
            guard let conn = clients[node] ?? (try? c.client(node)) else { continue }
            guard let r = try? conn.request(line) else {
                clients[node] = nil
                continue
            }
            clients[node] = conn
            replies.append(r)
            retry = okReply(r)
            // Retry cadence while the cluster refuses, not a wait for a condition.
            if retry == nil { usleep(50_000) }
        }
        let ok = try #require(retry, "never OK: \(replies.suffix(5))")
        #expect(replies.allSatisfy { okReply($0) != nil || transient($0) }, "\(replies)")
        // Once more: the key is known now, whichever node is asked.
        let again = try #require(okReply(try c.client(1).request(line)))
        #expect(again.dup && again.id == ok.id && again.lamport == ok.lamport, "\(again) after \(ok)")
        // Drain `orders` once the cluster settled: exactly one task, the one named.
        var settledLeader: Int?
        let settled = Harness.eventually(timeout: 60) {
            let s = [1, 2, 3].compactMap { c.status($0) }
            guard s.count == 3, let l = s.first?["leader"], let id = Int(l),
                  s.allSatisfy({ $0["leader"] == l && $0["mailbox"] == "0" }),
                  c.status(id)?["role"] == "leader" else { return false }
            settledLeader = id
            return true
        }
        try #require(settled, "the cluster did not settle: \([1, 2, 3].map { c.status($0) ?? [:] })")
        let drainer = try c.client(settledLeader!)
        var found: [(id: UInt64, payload: String)] = []
        for _ in 0..<10 {
            let r = try drainer.request("TAKE orders")
            if r == "EMPTY" { break }
            let j = try #require(jobFields(r), "TAKE orders: \(r)")
            found.append((j.id, j.payload))
            #expect(okReply(try drainer.request("ACK \(j.id)"))?.id == j.id)
        }
        #expect(found.count == 1 && found.first?.id == ok.id && found.first?.payload == "charge order 7",
                "\(found) (retry answered \(ok), first \(first))")
    }

    // MARK: - Replies

    /// `OK <id> <lamport>`, or with ` dup`.
    private func okReply(_ line: String) -> (id: UInt64, lamport: UInt64, dup: Bool)? {
        let w = line.split(separator: " ", omittingEmptySubsequences: false)
        guard w.count == 3 || (w.count == 4 && w[3] == "dup"), w[0] == "OK",
              let id = UInt64(w[1]), let lamport = UInt64(w[2]) else { return nil }
        return (id, lamport, w.count == 4)
    }



    /// The cluster could not serve the command just now (failover, no
    /// majority yet, back-pressure); the remedy is to send it again.
    private func transient(_ reply: String) -> Bool {
        reply.hasPrefix("ERR NOLEADER") || reply.hasPrefix("ERR NOQUORUM") || reply.hasPrefix("ERR BUSY")
    }
}
