// meshq put: one task from the arguments, or one task per stdin line with
// `-` (pipelined in batches, one stdout line per task in order), into a named
// queue with a priority, a delay and an idempotency key (protocol 2's PUT).
// Without a key a PUT whose outcome is unknown (NOQUORUM, a NOLEADER that
// says it may have been applied, a reply lost with its connection) is never
// sent again, as with `meshq enqueue`: it prints `UNKNOWN <node> <reason>`
// and the exit status is 1. With a key it is sent again, with the same key, to
// the next node (saying so on stderr): the server stores a key's task once
// within its dedup window and answers a repeat with the first id and `dup`.
// `--key auto` gives each task its own key: a random run id and the line
// number (`auto-<16 hex>-<line>`), never the content, so two equal lines are
// two tasks and only this run's own retries are deduplicated.
import ArgumentParser
import Foundation
import MeshQCore

struct PutCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "put", abstract: "Put a task in a queue (or one per stdin line with -), with a priority, delay or key.")

    @OptionGroup var nodes: NodeOptions
    @Option(help: "The queue (1-64 bytes of [A-Za-z0-9._-]).") var queue = "default"
    @Option(help: "Priority, 0-4294967295, lower first (the server's default is 1024).") var pri: Int?
    @Option(help: ArgumentHelp("Ready only this many ms after it is put (at most 365 days).", valueName: "ms"))
    var delay: Int?
    @Option(help: ArgumentHelp("Idempotency key (1-128 bytes of [A-Za-z0-9._:/-]), or auto for one per task.", valueName: "key"))
    var key: String?
    @Option(name: .customLong("client-id"), help: "Name used in logs and as task owner.")
    var clientId: String = "meshq-\(ProcessInfo.processInfo.processIdentifier)"
    @Flag(name: .short, help: "Show the Lamport clock and every task sent again.") var verbose = false
    @Argument(help: "The payload (words are joined by single spaces), or - for stdin.")
    var payload: [String] = []

    private var fromStdin: Bool { payload == ["-"] }
    private var autoKey: Bool { key == "auto" }

    func validate() throws {
        if payload.isEmpty { throw ValidationError("a payload is required (or - to read stdin)") }
        try QueueArgs.checkQueue(queue)
        if let pri, !(0...Int(UInt32.max)).contains(pri) { throw ValidationError("--pri must be from 0 to \(UInt32.max); got \(pri)") }
        if let delay { try QueueArgs.checkMs(delay, "--delay") }
        if let key, key != "auto" {
            try QueueArgs.checkKey(key)
            if fromStdin {
                throw ValidationError("--key \(key) with - would give every line the same key (all but the first a dup); use --key auto")
            }
        }
        if !fromStdin { try QueueArgs.checkPayload(payload.joined(separator: " ")) }
    }

    /// `pri=,delay=,key=` as given, or `-`.
    private func options(key k: String?) -> String {
        var o: [String] = []
        if let pri { o.append("pri=\(pri)") }
        if let delay { o.append("delay=\(delay)") }
        if let k { o.append("key=\(k)") }
        return o.isEmpty ? "-" : o.joined(separator: ",")
    }

    private static let runId: String = {
        let v = UInt64.random(in: 0...UInt64.max)
        let hex = String(v, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }()

    private func key(forLine n: Int) -> String? {
        autoKey ? "auto-\(Self.runId)-\(n)" : key
    }

    private var keyed: Bool { key != nil }
    private static let why = "it has a key: the server stores it once and answers a repeat dup"

    func run() throws {
        let client = QueueClient(nodes: try nodes.parsed(), clientId: clientId, tls: try nodes.tlsContext())
        defer { client.close() }
        if verbose {
            client.onRetry = { FileOut.stderr("meshq: \($0)") }
        } else if keyed {
            client.onResendAfterUnknown = { FileOut.stderr("meshq: \($0)") }
        }
        let ok = fromStdin ? try putStdin(client) : try putOne(client, payload.joined(separator: " "))
        if verbose { FileOut.stderr("lamport=\(client.lamport.clock.time)") }
        if !ok { throw ExitCode(1) }
    }

    private func putOne(_ client: QueueClient, _ task: String) throws -> Bool {
        let k = key(forLine: 1)
        do {
            let r = try client.request("PUT \(queue) \(options(key: k)) \(task)", repeatable: keyed, why: Self.why).reply
            print(r)
            return !r.hasPrefix("ERR")
        } catch let u as UnknownOutcome {
            print("UNKNOWN \(u.node) \(u.reason)")
            FileOut.stderr("meshq: PUT \(EnqueueCommand.quoted(task)) at \(u.node): outcome unknown (\(u.reason)). "
                + (keyed ? "It was sent again with key \(k!) until out of time; it is stored once at most, or may still be."
                         : "It may have been put, or a later leader may still put it; "
                            + "it was not sent again, so as not to put it twice (--key makes a repeat safe)."))
            return false
        } catch {
            throw fail("\(error)")
        }
    }

    private func putStdin(_ client: QueueClient) throws -> Bool {
        let o = StdinTasks.send(client, resendUnknown: keyed ? Self.why : nil, notDone: "put") { n, task in
            "PUT \(queue) \(options(key: key(forLine: n))) \(task)"
        }
        summarize(total: o.total, unknown: o.unknown)
        if let n = o.notSent { throw fail("no node could take line \(n); stopped after line \(o.lastLine)") }
        return o.failed == 0 && o.unknown.isEmpty
    }

    private func summarize(total: Int, unknown: [Int]) {
        guard !unknown.isEmpty else { return }
        FileOut.stderr("meshq: \(unknown.count) of \(total) tasks have an unknown outcome (lines \(StdinTasks.lineList(unknown))). "
            + (keyed ? "They were sent again with their keys until out of time; each is stored once at most, or may still be."
                     : "They may have been put, or a later leader may still put them; "
                        + "they were not sent again, so as not to put them twice (--key auto makes a repeat safe)."))
    }
}
