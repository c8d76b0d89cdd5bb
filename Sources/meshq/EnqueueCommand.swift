// meshq enqueue: one task from the arguments, or one task per stdin line
// with `-` (sent pipelined in batches, one stdout line per task in order).
// An ENQUEUE is never sent twice when its first outcome is unknown (NOQUORUM,
// a NOLEADER that says it may have been applied, a reply lost with its
// connection): a later leader may still commit it, so a second one could be a
// duplicate. Such a task prints `UNKNOWN <node> <reason>` on stdout and a line
// naming it and the node on stderr, and the exit status is 1. Only tasks that
// certainly did not take effect are sent again to another node; one that no
// node took prints `NOTSENT <reason>` and ends the run.
import ArgumentParser
import Foundation
import MeshQCore

struct EnqueueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "enqueue", abstract: "Add a task (or one per stdin line with -).")

    @OptionGroup var nodes: NodeOptions
    @Option(name: .customLong("client-id"), help: "Name used in logs and as task owner.")
    var clientId: String = "meshq-\(ProcessInfo.processInfo.processIdentifier)"
    @Flag(name: .short, help: "Show the Lamport clock and every task sent again.") var verbose = false
    @Argument(help: "The payload (words are joined by single spaces), or - for stdin.")
    var payload: [String] = []

    func validate() throws {
        if payload.isEmpty { throw ValidationError("a payload is required (or - to read stdin)") }
    }

    func run() throws {
        let client = QueueClient(nodes: try nodes.parsed(), clientId: clientId, tls: try nodes.tlsContext())
        defer { client.close() }
        if verbose { client.onRetry = { FileOut.stderr("meshq: \($0)") } }
        let ok = payload == ["-"] ? try enqueueStdin(client) : try enqueueOne(client, payload.joined(separator: " "))
        if verbose { FileOut.stderr("lamport=\(client.lamport.clock.time)") }
        if !ok { throw ExitCode(1) }
    }

    private func enqueueOne(_ client: QueueClient, _ task: String) throws -> Bool {
        do {
            let r = try client.request("ENQUEUE " + task, repeatable: false).reply
            print(r)
            return !r.hasPrefix("ERR")
        } catch let u as UnknownOutcome {
            print("UNKNOWN \(u.node) \(u.reason)")
            FileOut.stderr("meshq: ENQUEUE \(Self.quoted(task)) at \(u.node): outcome unknown (\(u.reason)). "
                + "It may have been enqueued, or a later leader may still enqueue it; "
                + "it was not sent again, so as not to enqueue it twice.")
            return false
        } catch {
            throw fail("\(error)")
        }
    }

    private func enqueueStdin(_ client: QueueClient) throws -> Bool {
        let o = StdinTasks.send(client, resendUnknown: nil, notDone: "enqueued") { "ENQUEUE " + $1 }
        summarize(total: o.total, unknown: o.unknown)
        if let n = o.notSent { throw fail("no node could take line \(n); stopped after line \(o.lastLine)") }
        return o.failed == 0 && o.unknown.isEmpty
    }

    private func summarize(total: Int, unknown: [Int]) {
        guard !unknown.isEmpty else { return }
        FileOut.stderr("meshq: \(unknown.count) of \(total) tasks have an unknown outcome (lines \(StdinTasks.lineList(unknown))). "
            + "They may have been enqueued, or a later leader may still enqueue them; "
            + "they were not sent again, so as not to enqueue them twice.")
    }

    /// A payload as it appears in a message: quoted, cut after 60 characters.
    static func quoted(_ s: String) -> String {
        s.count <= 60 ? "'\(s)'" : "'\(s.prefix(60))...' (\(s.utf8.count) bytes)"
    }
}
