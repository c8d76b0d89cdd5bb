// LeaseKeeper: keeps the lease of the task in hand while `meshq work --exec`
// runs its command. It is a thread of its own with a connection of its own
// (the main thread blocks in waitpid meanwhile). As soon as a command starts
// it sends `TOUCH <id> <lease-ms>`, which makes the lease end lease-ms from
// then whatever the queue's ack_timeout_ms, and again every lease-ms/2 until
// the command exits; a renewal can thus be up to half a lease late (a slow
// node, a failover) and the lease still holds. `end()` returns only when no
// TOUCH is in flight, so the ACK, NACK or BURY that follows never crosses one.
// A TOUCH answered NOTFOUND means the lease is gone (it ran out, or a new
// leader ended it): the task may be delivered again while the command still
// runs. That is said on stderr and touching stops; the command runs on and
// its verdict is still sent (and answered NOTFOUND if the task moved on).
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

    /// The command exited: no TOUCH is sent for the task after this returns.
    /// Returns how many TOUCHes took.
    @discardableResult
    func end() -> Int {
        cond.lock()
        defer { cond.unlock() }
        taskId = nil
        generation += 1
        cond.broadcast()
        while inFlight { cond.wait() }
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
            let keep = touch(id)
            cond.lock()
            inFlight = false
            if keep == .took { touches += 1 }
            cond.broadcast()
            if keep == .lost {
                while generation == gen && !stopped { cond.wait() }
                continue
            }
            let due = Date().addingTimeInterval(Double(leaseMs) / 2_000)
            while generation == gen && !stopped && cond.wait(until: due) {}
        }
    }

    private enum Touch { case took, failed, lost }

    private func touch(_ id: String) -> Touch {
        do {
            let r = try client.request("TOUCH \(id) \(leaseMs)", repeatable: true).reply
            if r.hasPrefix("OK ") {
                if verbose { FileOut.stderr("task=\(id) touched lease_ms=\(leaseMs)") }
                return .took
            }
            if r.hasPrefix("ERR NOTFOUND") {
                FileOut.stderr("meshq: task \(id): TOUCH: \(r): its lease is gone (it ran out, or a new leader ended it); "
                    + "the task may be delivered again while the command runs")
                return .lost
            }
            FileOut.stderr("meshq: task \(id): TOUCH: \(r); trying again in \(leaseMs / 2) ms")
        } catch {
            FileOut.stderr("meshq: task \(id): TOUCH failed (\(error)); trying again in \(leaseMs / 2) ms")
        }
        return .failed
    }
}
