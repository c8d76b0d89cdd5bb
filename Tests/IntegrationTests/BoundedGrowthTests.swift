// Bounded growth (issue 12, item 4): one task stays leased and unacked while
// many enqueue+ack pairs pass, and data_dir stays under 3x the live data plus
// one segment; the leased task is still leased (and then deliverable) at the
// end. beanstalkd grew a 500 GB binlog for 1 GB of live jobs this way.
//
// "Segment" is the compaction threshold (NodeStore.compactMinBytes, 64 MiB
// in service): the log is rewritten into a snapshot of the live queue once it
// is at least that big and more than twice the live state, so below it nothing
// is reclaimed and above it nothing older than one segment survives. "Live
// data" is the unacked tasks at any instant (at most the leased one plus two
// pipelined batches), counted at the payload plus 64 bytes each (the node's
// own estimate of a task's snapshot bytes, more than the 28 it uses).
//
// Sizes: a debug meshqd does only a few thousand commands a second on two
// shared cores (per-byte loops are slow unoptimised), far from the 2,000,000
// pairs of the issue in a minute. So run alone (`swift test --filter
// BoundedGrowthTests`) it does 100,000 pairs with the segment cut to 4 MiB
// (MESHQ_TEST_COMPACT_MIN_BYTES, a test-build-only switch): the same
// mechanism over the same number of segments (about five) as the run
// over 64 MiB ones. `make test` (through `make test-growth`) runs the issue's
// figure as it is: 2,000,000 pairs of 100-byte payloads against the release
// meshqd with its real 64 MiB segment (MESHQ_GROWTH_PAIRS, MESHQ_GROWTH_SEGMENT,
// MESHQ_GROWTH_PAYLOAD, MESHQD_BIN).
import Foundation
import Glibc
import MeshQClient
import MeshQTestSupport
import Testing

@Suite(.serialized) struct BoundedGrowthTests {
    static var segment: Int { env("MESHQ_GROWTH_SEGMENT") ?? 4 << 20 }
    static let batch = 500
    static var pairs: Int { env("MESHQ_GROWTH_PAIRS") ?? 100_000 }
    static var payloadBytes: Int { env("MESHQ_GROWTH_PAYLOAD") ?? 100 }
    /// Ignored by a release meshqd (it has no test switches): there the segment is the real 64 MiB.
    static var daemonEnv: [String: String] { ["MESHQ_TEST_COMPACT_MIN_BYTES": "\(segment)"] }

    static func env(_ k: String) -> Int? { ProcessInfo.processInfo.environment[k].flatMap { Int($0) } }

    /// The bound the issue sets, for the live data at its largest during the run.
    static var bound: Int {
        let liveTasks = 1 + 2 * batch
        return 3 * liveTasks * (payloadBytes + 64) + segment
    }

    @Test func oneLeasedTaskDoesNotPinTheLogOfASingleNode() throws {
        let d = Daemon(name: "growth1", cluster: "ack_timeout_ms = 86400000")
        try d.start(environment: Self.daemonEnv)
        let c = try d.client(timeoutMs: 60_000)
        let pinned = try lease(c)
        let sampler = DirSampler(dirs: [d.dataDir])
        try churn(c, pairs: Self.pairs, payloadBytes: Self.payloadBytes)
        let peak = sampler.stop()
        try checkBound(peak: peak, logs: [d.log])
        try expectStillLeased(c, pinned)

        // The compacted state is the live one: after a restart the pinned task
        // (ready again: leases are leader-local) comes back, and nothing else.
        d.stop()
        try d.start(environment: Self.daemonEnv)
        let c2 = try d.client(timeoutMs: 60_000)
        #expect(try c2.request("DEQUEUE").hasPrefix("TASK \(pinned) "))
        #expect(try c2.request("DEQUEUE") == "EMPTY")
        #expect(try c2.request("ACK \(pinned)").hasPrefix("OK \(pinned) "))
        #expect(DirSampler.bytes(d.dataDir) < Self.bound)
    }

    @Test func oneLeasedTaskDoesNotPinTheLogsOfACluster() throws {
        let cl = Cluster(name: "growth3", cluster: "heartbeat_interval_ms = 100\nleader_timeout_ms = 3000\n"
                         + "election_timeout_ms = 1000\nack_timeout_ms = 86400000\ncommit_timeout_ms = 10000")
        try cl.start(environment: Dictionary(uniqueKeysWithValues: [1, 2, 3].map { ($0, Self.daemonEnv) }))
        _ = try #require(cl.awaitAgreement(on: 3, among: [1, 2, 3]))
        let c = try LineClient(host: "127.0.0.1", port: cl.clientPorts[3]!, timeoutMs: 60_000)
        let pinned = try lease(c)
        let sampler = DirSampler(dirs: cl.ids.map { "\(cl.dir)/\($0)" })
        try churn(c, pairs: Self.pairs, payloadBytes: Self.payloadBytes)
        let peak = sampler.stop()
        try checkBound(peak: peak, logs: cl.ids.map { cl.log($0) })
        // Still one leadership: the lease is the leader's, so it must not have moved.
        #expect(cl.status(3)?["role"] == "leader")
        try expectStillLeased(c, pinned)
        #expect(try c.request("ACK \(pinned)").hasPrefix("OK \(pinned) "))
    }

    // MARK: the pieces

    /// Enqueues the task that stays leased, leases it, returns its id.
    private func lease(_ c: LineClient) throws -> String {
        let ok = try c.request("ENQUEUE pinned-task")
        #expect(ok.hasPrefix("OK "))
        let t = try c.request("DEQUEUE")
        let parts = t.split(separator: " ", maxSplits: 3).map(String.init)
        guard parts.count == 4, parts[0] == "TASK", parts[3] == "pinned-task" else { throw HarnessError("lease: \(t)") }
        return parts[1]
    }

    /// `pairs` ENQUEUE + ACK pairs, pipelined: each write carries a batch of
    /// ENQUEUEs and the ACKs of the previous batch's tasks.
    private func churn(_ c: LineClient, pairs: Int, payloadBytes: Int) throws {
        let payload = String(repeating: "g", count: payloadBytes)
        let enqueue = "ENQUEUE \(payload)\n"
        var previous: [Substring] = []
        var done = 0
        while done < pairs || !previous.isEmpty {
            let k = min(Self.batch, pairs - done)
            var out = String(repeating: enqueue, count: k)
            for id in previous { out += "ACK \(id)\n" }
            try c.send(out)
            var ids: [Substring] = []
            ids.reserveCapacity(k)
            for _ in 0..<k {
                let r = try c.readLine()
                guard r.hasPrefix("OK ") else { throw HarnessError("ENQUEUE answered \(r) after \(done) pairs") }
                ids.append(r.split(separator: " ")[1])
            }
            for id in previous {
                let r = try c.readLine()
                guard r.hasPrefix("OK \(id) ") else { throw HarnessError("ACK \(id) answered \(r) after \(done) pairs") }
            }
            previous = ids
            done += k
        }
    }

    private func checkBound(peak: [Int], logs: [String]) throws {
        let written = Self.pairs * (Self.payloadBytes + 100)
        print("bounded growth: \(Self.pairs) pairs of \(Self.payloadBytes)-byte tasks, segment \(Self.segment) B: "
              + "data_dir peak \(peak) B, bound \(Self.bound) B")
        // The run must be big enough to mean something: several segments written.
        #expect(written > 3 * Self.segment, "the run writes \(written) bytes: too few to test the bound")
        for (i, p) in peak.enumerated() {
            #expect(p < Self.bound, "data_dir \(i + 1) peaked at \(p) bytes, over 3x the live data plus one segment (\(Self.bound))")
            #expect(p > 0)
        }
        for (i, log) in logs.enumerated() {
            // Without compaction the log would hold everything written: it was rewritten as it grew.
            let compactions = log.components(separatedBy: "event=log_compacted").count - 1
            #expect(compactions >= max(1, written / Self.segment - 1), "node \(i + 1) compacted \(compactions) times for \(written) bytes written")
        }
    }

    /// The task leased at the start is leased still (NACK gives it back: a
    /// task not leased would answer NOTFOUND), and is delivered again (leased anew).
    private func expectStillLeased(_ c: LineClient, _ id: String) throws {
        let s = try c.request("STATUS")
        #expect(s.contains(" inflight=1 ") && s.contains(" ready=0 "), "\(s)")
        #expect(try c.request("NACK \(id)").hasPrefix("OK \(id) "))
        #expect(try c.request("DEQUEUE").hasPrefix("TASK \(id) "))
    }
}

/// Samples the size of some directories every few milliseconds on its own
/// thread, keeping each one's peak, until `stop`.
final class DirSampler: @unchecked Sendable {
    private let dirs: [String]
    private let lock = NSLock()
    private var peaks: [Int]
    private var running = true
    private let done = DispatchSemaphore(value: 0)

    init(dirs: [String]) {
        self.dirs = dirs
        peaks = Array(repeating: 0, count: dirs.count)
        let t = Thread { [self] in
            while lock.withLock({ running }) {
                let sizes = dirs.map { DirSampler.bytes($0) }
                lock.withLock { for i in sizes.indices { peaks[i] = max(peaks[i], sizes[i]) } }
                usleep(5_000)
            }
            done.signal()
        }
        t.start()
    }

    func stop() -> [Int] {
        lock.withLock { running = false }
        done.wait()
        let sizes = dirs.map { DirSampler.bytes($0) }
        return lock.withLock { zip(peaks, sizes).map { max($0, $1) } }
    }

    /// Bytes of the regular files in `dir` and its subdirectories; a file
    /// removed while it is listed counts 0 (compaction deletes old generations).
    static func bytes(_ dir: String) -> Int {
        var total = 0
        var st = stat()
        guard let walk = FileManager.default.enumerator(atPath: dir) else { return 0 }
        for case let f as String in walk where stat(dir + "/" + f, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG {
            total += Int(st.st_size)
        }
        return total
    }
}
