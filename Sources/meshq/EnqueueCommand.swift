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
        var failed = 0
        var unknown: [Int] = []
        var notSent: Int?
        var total = 0
        var batch: [(line: Int, task: String)] = []
        var lineNo = 0
        func send() throws {
            let results = client.pipelineOnce(batch.map { "ENQUEUE " + $0.task })
            for (b, result) in zip(batch, results) {
                switch result {
                case .reply(let r):
                    print(r)
                    if r.hasPrefix("ERR") { failed += 1 }
                case .unknown(let u):
                    print("UNKNOWN \(u.node) \(u.reason)")
                    FileOut.stderr("meshq: line \(b.line) \(Self.quoted(b.task)) at \(u.node): outcome unknown (\(u.reason))")
                    unknown.append(b.line)
                case .notSent(let why):
                    print("NOTSENT \(why)")
                    FileOut.stderr("meshq: line \(b.line) \(Self.quoted(b.task)): not enqueued (\(why))")
                    notSent = notSent ?? b.line
                    failed += 1
                }
            }
            batch.removeAll()
            if let notSent {
                // No node took it: the ones after this batch are not even read.
                summarize(total: total, failed: failed, unknown: unknown)
                throw fail("no node could take line \(notSent); stopped after line \(lineNo)")
            }
        }
        while let line = readLine(strippingNewline: true) {
            lineNo += 1
            if line.isEmpty { continue }
            total += 1
            batch.append((lineNo, line))
            if batch.count == 1_000 { try send() }
        }
        if !batch.isEmpty { try send() }
        summarize(total: total, failed: failed, unknown: unknown)
        return failed == 0 && unknown.isEmpty
    }

    private func summarize(total: Int, failed: Int, unknown: [Int]) {
        guard !unknown.isEmpty else { return }
        let lines = unknown.prefix(20).map(String.init).joined(separator: ", ") + (unknown.count > 20 ? ", ..." : "")
        FileOut.stderr("meshq: \(unknown.count) of \(total) tasks have an unknown outcome (lines \(lines)). "
            + "They may have been enqueued, or a later leader may still enqueue them; "
            + "they were not sent again, so as not to enqueue them twice.")
    }

    /// A payload as it appears in a message: quoted, cut after 60 characters.
    static func quoted(_ s: String) -> String {
        s.count <= 60 ? "'\(s)'" : "'\(s.prefix(60))...' (\(s.utf8.count) bytes)"
    }
}
