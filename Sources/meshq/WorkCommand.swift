// meshq work: take, run, ack — in a loop. `TAKE <queues> <wait-ms>` leases the
// first ready task of the first listed queue that has one. The payload goes to
// CMD's stdin, with MESHQ_TASK_ID, MESHQ_QUEUE and MESHQ_DELIVERIES in its
// environment; while CMD runs, LeaseKeeper renews the lease (TOUCH, every
// lease-ms/2). Exit status 0 acks; the `--bury-status` status buries (the task
// goes to its dead-letter queue); anything else nacks, ready again at once or,
// with `--retry-delay MS[,BACKOFF]`, after MS*BACKOFF^(deliveries-1) ms (at
// most 365 days).
// SIGINT/SIGTERM end the loop only between tasks: a task in hand is always
// finished and acked, or nacked, never dropped with its lease.
// The worker never dies of what a command does (CommandRunner): SIGPIPE is
// ignored, and a command that does not read its stdin is no error. If the
// worker itself fails (no node reachable to ACK), the lease is left to expire
// and the task is delivered again; it is never acked unless it was done.
// ACK, NACK and BURY are safe to repeat, so one whose reply was lost is sent
// again: NOTFOUND after such a lost reply means the first one took.
import ArgumentParser
import Foundation
import Glibc
import MeshQCore
import Reactor

struct WorkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "work", abstract: "Take, run, ack (loop).")

    @OptionGroup var nodes: NodeOptions
    @Option(help: ArgumentHelp("Queues to take from, first listed first (comma list).", valueName: "q[,q...]"))
    var queue = "default"
    @Option(help: "Stop after this many tasks.") var count: Int?
    @Option(help: "Shell command run per task, payload on stdin.") var exec: String?
    @Option(name: .customLong("wait-ms"), help: "How long each TAKE waits for a task.") var waitMs: Int = 5_000
    @Option(name: .customLong("lease-ms"), help: "With --exec: the lease kept while CMD runs (TOUCH every lease-ms/2; default 30000).")
    var leaseMs: Int?
    @Option(name: .customLong("bury-status"), help: "With --exec: CMD exiting with this status buries the task.")
    var buryStatus: Int?
    @Option(name: .customLong("retry-delay"),
            help: ArgumentHelp("With --exec: a failed task is ready again after ms*backoff^(deliveries-1) ms.",
                               valueName: "ms[,backoff]"))
    var retryDelay: String?
    @Option(name: .customLong("client-id")) var clientId: String = "worker-\(ProcessInfo.processInfo.processIdentifier)"
    @Flag(name: .short, help: "Show each task and the Lamport clock.") var verbose = false

    static let defaultLeaseMs = 30_000

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        try QueueArgs.checkMs(waitMs, "--wait-ms", high: LineParser.maxWaitMs)
        _ = try QueueArgs.queueList(queue)
        if exec == nil {
            for (given, name) in [(leaseMs != nil, "--lease-ms"), (buryStatus != nil, "--bury-status"), (retryDelay != nil, "--retry-delay")]
            where given {
                throw ValidationError("\(name) needs --exec (without it every task is printed and acked)")
            }
        }
        if let leaseMs { try QueueArgs.checkMs(leaseMs, "--lease-ms", low: 100) }
        if let buryStatus, !(1...255).contains(buryStatus) {
            throw ValidationError("--bury-status must be an exit status from 1 to 255 (0 acks); got \(buryStatus)")
        }
        if let retryDelay { _ = try Self.parseRetryDelay(retryDelay) }
    }

    static func parseRetryDelay(_ s: String) throws -> (ms: Int, backoff: Double) {
        let parts = s.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard parts.count <= 2, let ms = Int(parts[0]) else {
            throw ValidationError("--retry-delay must be MS or MS,BACKOFF (e.g. 1000 or 1000,2); got '\(s)'")
        }
        try QueueArgs.checkMs(ms, "--retry-delay MS")
        var backoff = 1.0
        if parts.count == 2 {
            guard let b = Double(parts[1]), b.isFinite, b >= 1 else {
                throw ValidationError("--retry-delay BACKOFF must be a number of at least 1; got '\(parts[1])'")
            }
            backoff = b
        }
        return (ms, backoff)
    }

    /// The NACK delay for a task leased `deliveries` times: ms*backoff^(deliveries-1), capped at 365 days.
    static func retryDelayMs(ms: Int, backoff: Double, deliveries: Int) -> Int {
        let d = Double(ms) * pow(backoff, Double(max(deliveries, 1) - 1))
        return d.isFinite ? Int(min(d.rounded(), Double(LineParser.maxDelayMs))) : LineParser.maxDelayMs
    }

    struct Job {
        let id: String
        let queue: String
        let deliveries: Int
        let payload: String

        /// `JOB <id> <lamport> <queue> <deliveries> <payload>`
        init?(_ r: String) {
            let p = r.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: false).map(String.init)
            guard p.count >= 5, p[0] == "JOB", UInt64(p[1]) != nil, let d = Int(p[4]) else { return nil }
            (id, queue, deliveries, payload) = (p[1], p[3], d, p.count == 6 ? p[5] : "")
        }
    }

    func run() throws {
        // A command that exits without reading its stdin, or a closed stdout,
        // must be an error we handle, not a signal that kills us mid-lease.
        ProcessSignals.ignore(SIGPIPE)
        let hosts = try nodes.parsed(), tls = try nodes.tlsContext()
        let client = QueueClient(nodes: hosts, clientId: clientId, tls: tls)
        client.timeoutMs = waitMs + 10_000
        if verbose { client.onRetry = { FileOut.stderr("meshq: \($0)") } }
        let lease = leaseMs ?? Self.defaultLeaseMs
        let keeper = exec.map { _ in
            LeaseKeeper(client: QueueClient(nodes: hosts, clientId: clientId + "-lease", tls: tls), leaseMs: lease, verbose: verbose)
        }
        defer { keeper?.stop() }
        let retry = try retryDelay.map(Self.parseRetryDelay)
        let take = "TAKE \(try QueueArgs.queueList(queue).joined(separator: ",")) \(waitMs)"
        let stop = StopFlag(message: "meshq: stopping after the current task")
        var done = 0
        while !stop.requested, count.map({ done < $0 }) ?? true {
            let r: String
            do {
                // A TAKE whose reply was lost may have leased us a task we
                // never saw: that lease expires and the task comes back.
                r = try client.request(take, repeatable: true).reply
            } catch {
                throw fail("\(error)")
            }
            if r == "EMPTY" { continue }
            guard let job = Job(r) else { throw fail(r.hasPrefix("ERR ") ? "\(take): \(r)" : "unexpected reply: \(r)") }
            // The verdict: ACK, BURY or NACK (with the retry delay).
            var verdict = "ACK \(job.id)"
            var note = ""
            if let exec, let keeper {
                keeper.begin(job.id)
                let outcome: CommandRunner.Outcome?
                do {
                    outcome = try CommandRunner.run(exec, input: Array(job.payload.utf8), env: [
                        ("MESHQ_TASK_ID", job.id), ("MESHQ_QUEUE", job.queue), ("MESHQ_DELIVERIES", "\(job.deliveries)"),
                    ])
                } catch {
                    FileOut.stderr("meshq: task \(job.id): \(error)")
                    outcome = nil
                }
                let touches = keeper.end()
                note = outcome.map { " " + $0.summary } ?? ""
                if outcome?.succeeded == true {
                    verdict = "ACK \(job.id)"
                } else if let buryStatus, let s = outcome?.exitStatus, Int(s) == buryStatus {
                    verdict = "BURY \(job.id)"
                } else if let retry {
                    let ms = Self.retryDelayMs(ms: retry.ms, backoff: retry.backoff, deliveries: job.deliveries)
                    verdict = "NACK \(job.id) \(ms)"
                    note += " delay_ms=\(ms)"
                } else {
                    verdict = "NACK \(job.id)"
                }
                if touches > 0 { note += " touches=\(touches)" }
            } else {
                guard FileOut.stdout("\(job.id) \(job.payload)") else {
                    // Nobody reads our output any more (`meshq work | head -1`):
                    // the task was not handed on, so it goes back, and we stop.
                    _ = try? client.request("NACK \(job.id)", repeatable: true)
                    throw fail("standard output is closed: task \(job.id) was given back (NACK), stopping")
                }
            }
            try finish(job, verdict, client: client, note: note)
            done += 1
        }
        client.close()
    }

    private func finish(_ job: Job, _ line: String, client: QueueClient, note: String) throws {
        let verb = String(line.prefix { $0 != " " })
        let past = ["ACK": "acked", "NACK": "nacked", "BURY": "buried"][verb] ?? verb
        let answer: QueueClient.Answer
        do {
            answer = try client.request(line, repeatable: true)
        } catch {
            throw fail("\(verb) \(job.id) failed (\(error)); its lease will expire and the task will be delivered again")
        }
        let r = answer.reply
        if r.hasPrefix("OK ") {
            if verbose {
                FileOut.stderr("task=\(job.id) \(past)\(note) queue=\(job.queue) deliveries=\(job.deliveries) "
                    + "reply=\(r) lamport=\(client.lamport.clock.time)")
            }
        } else if answer.afterUnknown && r.hasPrefix("ERR NOTFOUND") {
            // The first attempt's reply was lost; this NOTFOUND says it took.
            if verbose {
                FileOut.stderr("task=\(job.id) \(past)\(note) reply=\(r) (an earlier \(verb) took; its reply was lost)")
            }
        } else {
            // The lease was lost meanwhile (expired, or a failover) and the
            // task was acked elsewhere, or is ready again: say so, go on.
            FileOut.stderr("meshq: \(verb) \(job.id): \(r)")
        }
    }
}
