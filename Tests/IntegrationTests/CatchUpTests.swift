// Catch-up of any size with real processes: a follower killed while over
// 100 MiB of tasks (payloads up to max_payload_bytes) are enqueued comes back
// behind the leader's in-memory window, so it is sent a snapshot larger than
// the old 64 MiB frame limit, in chunks; the leader keeps answering ENQUEUE
// meanwhile; once caught up, the leader may die and every task answered OK
// is still delivered, by the new leader, from the followers' copies.
import Foundation
import Glibc
import MeshQClient
import MeshQTestSupport
import Testing

@Suite(.serialized) struct CatchUpTests {
    /// The default max_payload_bytes (debug builds of meshqd, which the
    /// integration tests run, move larger lines too slowly for a quick test).
    static let maxPayload = 65_536

    private func commit(_ s: [String: String]?) -> UInt64? { s?["commit"].flatMap { UInt64($0) } }

    /// "<tag>-" then filler up to `size` bytes.
    static func payload(_ tag: String, size: Int) -> String {
        let head = tag + "-"
        return head + String(repeating: "p", count: max(0, size - head.utf8.count))
    }

    @Test(.enabled(if: testHooksCompiled, Comment(rawValue: needsTestHooks)))
    func aFollowerOver100MiBBehindCatchesUpWhileTheLeaderServes() throws {
        let c = Cluster(name: "catch-up-100m", cluster: """
            heartbeat_interval_ms = 100
            leader_timeout_ms = 3000
            election_timeout_ms = 1000
            commit_timeout_ms = 10000
            max_payload_bytes = \(Self.maxPayload)
            """)
        // A small in-memory window: 100 MiB of entries are far past it, so
        // the follower needs a snapshot (>64 MiB), not entries.
        let env = Dictionary(uniqueKeysWithValues: c.ids.map { ($0, ["MESHQ_TEST_LOG_WINDOW": "1000"]) })
        try c.start(environment: env)
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        let client = try LineClient(host: "127.0.0.1", port: c.clientPorts[3]!, timeoutMs: 30_000)
        var ok: [String: Int] = [:]
        func enqueue(_ tags: [(String, Int)]) throws {
            let replies = try client.pipeline(tags.map { "ENQUEUE " + Self.payload($0.0, size: $0.1) })
            for ((tag, size), r) in zip(tags, replies) {
                #expect(r.hasPrefix("OK "), "ENQUEUE \(tag) (\(size) bytes): \(r)")
                if r.hasPrefix("OK ") { ok[tag] = size }
            }
        }
        try enqueue((0..<5).map { ("warm\($0)", 100) })
        let warm = try #require(commit(c.status(3)))
        #expect(Harness.eventually(timeout: 30) { (commit(c.status(1)) ?? 0) >= warm })
        c.kill9(1)
        let t0 = Date()

        // Over 100 MiB while node 1 is down: sizes up to max_payload_bytes
        // (the line holds "ENQUEUE " and the payload).
        let sizes = [Self.maxPayload, Self.maxPayload / 2, 20_000, 1_000, Self.maxPayload - 1]
        var bytes = 0
        var n = 0
        while bytes < 105 << 20 {
            var batch: [(String, Int)] = []
            for _ in 0..<32 {
                let s = sizes[n % sizes.count]
                batch.append(("big\(n)", s))
                bytes += s
                n += 1
            }
            try enqueue(batch)
        }
        let behind = try #require(commit(c.status(3)))
        print("catch-up test: \(bytes) bytes enqueued in \(Date().timeIntervalSince(t0)) s")

        // While node 1 catches up, a second client keeps enqueueing at the leader.
        let live = LiveEnqueuer(port: c.clientPorts[3]!)
        live.start()
        let started = Date()
        try c.start([1], environment: env)
        let caughtUp = Harness.eventually(timeout: 60) {
            guard let s1 = c.status(1) else { return false }
            return s1["leader"] == "3" && (commit(s1) ?? 0) >= behind
        }
        let catchUpSeconds = Date().timeIntervalSince(started)
        let served = live.stop()
        print("catch-up test: caught up in \(catchUpSeconds) s, \(served.ok.count) live ENQUEUEs answered meanwhile")
        #expect(caughtUp, "node 1 never caught up: \(c.log(1).suffix(2000))")
        #expect(served.errors.isEmpty, "the leader refused ENQUEUEs during the catch-up: \(served.errors.prefix(3))")
        #expect(served.ok.count > 0, "the leader answered no ENQUEUE during a \(catchUpSeconds) s catch-up")
        for tag in served.ok { ok[tag] = 10 }
        // The catch-up was one chunked snapshot, larger than the old frame limit.
        let transfer = c.log(3).split(separator: "\n").first { $0.contains("event=snapshot_transfer ") && $0.contains("peer=1") }
        let transferBytes = transfer.flatMap { line in
            line.split(separator: " ").first { $0.hasPrefix("bytes=") }.flatMap { Int($0.dropFirst(6)) }
        }
        #expect((transferBytes ?? 0) > 64 << 20, "no chunked snapshot over 64 MiB to node 1: \(String(describing: transfer))")
        #expect(c.log(1).contains("event=snapshot_installed"))

        // Same state: the leader's commit and queue depth, once the live writer stopped.
        #expect(Harness.eventually(timeout: 30) {
            guard let s1 = c.status(1), let s3 = c.status(3) else { return false }
            return commit(s1) == commit(s3) && s1["tasks"] == s3["tasks"] && s1["ready"] == s3["ready"]
        }, "node 1 \(String(describing: c.status(1))) vs leader \(String(describing: c.status(3)))")

        // The leader dies: every task answered OK is delivered by the next one.
        c.kill9(3)
        _ = try #require(c.awaitAgreement(on: 2, among: [1, 2], timeout: 60))
        var delivered: [String: Int] = [:]
        for p in try drain(c, at: 2) {
            let tag = String(p.prefix { $0 != "-" })
            delivered[tag] = p.utf8.count
        }
        let lost = ok.keys.filter { delivered[$0] == nil }
        #expect(lost.isEmpty, "\(lost.count) acknowledged tasks lost, e.g. \(lost.sorted().prefix(5))")
        let damaged = ok.filter { $0.value > 10 && delivered[$0.key] != nil && delivered[$0.key] != $0.value }
        #expect(damaged.isEmpty, "payloads changed size: \(damaged.keys.sorted().prefix(5))")
    }
}

/// Enqueues small tasks at one node, one at a time, on its own thread,
/// until stopped; remembers what was answered OK and anything else.
final class LiveEnqueuer: @unchecked Sendable {
    private let port: UInt16
    private let lock = NSLock()
    private var stopping = false
    private var ok: [String] = []
    private var errors: [String] = []
    private let done = DispatchSemaphore(value: 0)

    init(port: UInt16) { self.port = port }

    func start() {
        Thread.detachNewThread { [self] in
            defer { done.signal() }
            guard let client = try? LineClient(host: "127.0.0.1", port: port, timeoutMs: 30_000) else {
                lock.withLock { errors.append("no connection") }
                return
            }
            var i = 0
            while !lock.withLock({ stopping }) {
                let tag = "live\(i)"
                i += 1
                let r = (try? client.request("ENQUEUE " + CatchUpTests.payload(tag, size: 10))) ?? "no reply"
                lock.withLock { if r.hasPrefix("OK ") { ok.append(tag) } else { errors.append("\(tag): \(r)") } }
                // Pacing (a steady trickle of clients), not a wait for a condition.
                usleep(20_000)
            }
        }
    }

    func stop() -> (ok: [String], errors: [String]) {
        lock.withLock { stopping = true }
        done.wait()
        return lock.withLock { (ok, errors) }
    }
}
