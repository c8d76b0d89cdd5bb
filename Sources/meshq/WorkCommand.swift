// meshq work: lease, run, ack — in a loop. The payload goes to CMD's stdin;
// exit status 0 acks, anything else nacks (the task is ready again at once).
// SIGINT/SIGTERM end the loop only between tasks: a task in hand is always
// finished and acked, or nacked, never dropped with its lease.
// The worker never dies of what a command does (CommandRunner): SIGPIPE is
// ignored, and a command that does not read its stdin is no error. If the
// worker itself fails (no node reachable to ACK), the lease is left to expire
// and the task is delivered again; it is never acked unless it was done.
// ACK and NACK are safe to repeat, so one whose reply was lost is sent again:
// NOTFOUND after such a lost reply means the first one took.
import ArgumentParser
import Foundation
import Glibc
import Reactor

struct WorkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "work", abstract: "Dequeue, run, ack (loop).")

    @OptionGroup var nodes: NodeOptions
    @Option(help: "Stop after this many tasks.") var count: Int?
    @Option(help: "Shell command run per task, payload on stdin.") var exec: String?
    @Option(name: .customLong("wait-ms"), help: "How long each DEQUEUE waits for a task.") var waitMs: Int = 5_000
    @Option(name: .customLong("client-id")) var clientId: String = "worker-\(ProcessInfo.processInfo.processIdentifier)"
    @Flag(name: .short, help: "Show each task and the Lamport clock.") var verbose = false

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        if waitMs < 0 { throw ValidationError("--wait-ms must not be negative") }
    }

    func run() throws {
        // A command that exits without reading its stdin, or a closed stdout,
        // must be an error we handle, not a signal that kills us mid-lease.
        ProcessSignals.ignore(SIGPIPE)
        let client = QueueClient(nodes: try nodes.parsed(), clientId: clientId, tls: try nodes.tlsContext())
        client.timeoutMs = waitMs + 10_000
        if verbose { client.onRetry = { FileOut.stderr("meshq: \($0)") } }
        let stop = StopFlag(message: "meshq: stopping after the current task")
        var done = 0
        while !stop.requested, count.map({ done < $0 }) ?? true {
            let r: String
            do {
                // A DEQUEUE whose reply was lost may have leased us a task we
                // never saw: that lease expires and the task comes back.
                r = try client.request("DEQUEUE \(waitMs)", repeatable: true).reply
            } catch {
                throw fail("\(error)")
            }
            if r == "EMPTY" { continue }
            let parts = r.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
            guard parts.count >= 3, parts[0] == "TASK" else { throw fail("unexpected reply: \(r)") }
            let id = parts[1]
            let payload = parts.count == 4 ? parts[3] : ""
            let ok: Bool
            var note = ""
            if let exec {
                do {
                    let outcome = try CommandRunner.run(exec, input: Array(payload.utf8))
                    ok = outcome.succeeded
                    note = " " + outcome.summary
                } catch {
                    FileOut.stderr("meshq: task \(id): \(error)")
                    ok = false
                }
            } else {
                guard FileOut.stdout("\(id) \(payload)") else {
                    // Nobody reads our output any more (`meshq work | head -1`):
                    // the task was not handed on, so it goes back, and we stop.
                    _ = try? client.request("NACK \(id)", repeatable: true)
                    throw fail("standard output is closed: task \(id) was given back (NACK), stopping")
                }
                ok = true
            }
            try finish(id: id, ack: ok, client: client, note: note)
            done += 1
        }
        client.close()
    }

    private func finish(id: String, ack: Bool, client: QueueClient, note: String) throws {
        let verb = ack ? "ACK" : "NACK"
        let answer: QueueClient.Answer
        do {
            answer = try client.request("\(verb) \(id)", repeatable: true)
        } catch {
            throw fail("\(verb) \(id) failed (\(error)); its lease will expire and the task will be delivered again")
        }
        let r = answer.reply
        if r.hasPrefix("OK ") {
            if verbose {
                FileOut.stderr("task=\(id) \(ack ? "acked" : "nacked")\(note) reply=\(r) lamport=\(client.lamport.clock.time)")
            }
        } else if answer.afterUnknown && r.hasPrefix("ERR NOTFOUND") {
            // The first attempt's reply was lost; this NOTFOUND says it took.
            if verbose {
                FileOut.stderr("task=\(id) \(ack ? "acked" : "nacked")\(note) reply=\(r) (an earlier \(verb) took; its reply was lost)")
            }
        } else {
            // The lease was lost meanwhile (expired, or a failover) and the
            // task was acked elsewhere, or is ready again: say so, go on.
            FileOut.stderr("meshq: \(verb) \(id): \(r)")
        }
    }
}
