// LeaseKeeper: keeps the lease of the task in hand while `meshq work --exec`
// runs its command. It is a thread of its own with a connection of its own
// (the main thread blocks in waitpid meanwhile). As soon as a command starts
// it sends `TOUCH <id> <lease-ms>`, which makes the lease end lease-ms from
// then whatever the queue's ack_timeout_ms, and again every lease-ms/2 until
// the command exits; a renewal can thus be up to half a lease late (a slow
// node, a failover) and the lease still holds.
// The verdict (ACK, NACK, BURY) never waits for a TOUCH: `end()` returns at
// once, and a TOUCH then in flight is not sent again and its answer is
// ignored. Should it reach the leader after the verdict it is answered
// NOTFOUND, or, after a NACK without delay whose task was leased again
// meanwhile, it sets that new lease to lease-ms (leases carry no owner in the
// protocol); nothing else.
// A TOUCH answered NOTFOUND while the command runs means the lease is gone (it
// ran out, or a new leader ended it): the task may be delivered again while
// the command still runs. That is said on stderr and touching stops; the
// command runs on and its verdict is still sent (answered NOTFOUND if the
// task moved on).
import Foundation

final class LeaseKeeper: @unchecked Sendable {
    private let cond = NSCondition()
    private var taskId: String?
    private var generation = 0
    private var inFlight = false
    private var stopped = false
    private var touches = 0
    private let client: QueueClient
    private let leaseMs: Int
    private let verbose: Bool

    init(client: QueueClient, leaseMs: Int, verbose: Bool) {
        self.client = client
        self.leaseMs = leaseMs
        self.verbose = verbose
        // A TOUCH still failing after half a lease is late anyway: the next
        // round starts afresh rather than holding up the task's verdict.
        client.retryForMs = max(1_000, min(30_000, leaseMs / 2))
        let thread = Thread { [self] in loop() }
        thread.name = "meshq-lease"
        thread.start()
    }

    /// The command of task `id` starts: touch it now and every lease-ms/2.
    func begin(_ id: String) {
        cond.lock()
        taskId = id
        touches = 0
        generation += 1
        cond.broadcast()
        cond.unlock()
    }

    /// The command exited: no TOUCH is sent for the task after this (one in
    /// flight is not sent again). Returns how many TOUCHes took.
    @discardableResult
    func end() -> Int {
        cond.lock()
        defer { cond.unlock() }
        taskId = nil
        generation += 1
        cond.broadcast()
        return touches
    }

    func stop() {
        cond.lock()
        stopped = true
        cond.broadcast()
        while inFlight { cond.wait() }
        cond.unlock()
        client.close()
    }

    private func loop() {
        cond.lock()
        defer { cond.unlock() }
        while !stopped {
            guard let id = taskId else {
                cond.wait()
                continue
            }
            let gen = generation
            inFlight = true
            cond.unlock()
            let (result, message) = touch(id) { [self] in cond.withLock { generation == gen && !stopped } }
            cond.lock()
            inFlight = false
            cond.broadcast()
            // The task ended meanwhile: its TOUCH's answer no longer matters.
            guard generation == gen else { continue }
            if let message { FileOut.stderr(message) }
            if result == .took { touches += 1 }
            if result == .lost {
                while generation == gen && !stopped { cond.wait() }
                continue
            }
            let due = Date().addingTimeInterval(Double(leaseMs) / 2_000)
            while generation == gen && !stopped && cond.wait(until: due) {}
        }
    }

    private enum Touch { case took, failed, lost }

    private func touch(_ id: String, wanted: @escaping () -> Bool) -> (Touch, String?) {
        do {
            let r = try client.request("TOUCH \(id) \(leaseMs)", repeatable: true, wanted: wanted).reply
            if r.hasPrefix("OK ") {
                return (.took, verbose ? "task=\(id) touched lease_ms=\(leaseMs)" : nil)
            }
            if r.hasPrefix("ERR NOTFOUND") {
                return (.lost, "meshq: task \(id): TOUCH: \(r): its lease is gone (it ran out, or a new leader ended it); "
                    + "the task may be delivered again while the command runs")
            }
            return (.failed, "meshq: task \(id): TOUCH: \(r); trying again in \(leaseMs / 2) ms")
        } catch {
            return (.failed, "meshq: task \(id): TOUCH failed (\(error)); trying again in \(leaseMs / 2) ms")
        }
    }
}
