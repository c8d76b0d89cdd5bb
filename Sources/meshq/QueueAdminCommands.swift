// meshq stats, peek, kick, pause: protocol 2's queue inspection and control.
// Each sends one command to the cluster (moving from node to node as
// QueueClient does). STATS, PEEK and PAUSE are sent again after an unknown
// outcome (reading twice is harmless; a PAUSE sent twice pauses from the
// later time). KICK is not: a second one could move tasks dead-lettered
// since, so an unknown outcome is reported and the exit status is 1.
// A server ERR is printed on stderr and the exit status is 1.
import ArgumentParser
import Foundation

/// What the four commands share: the nodes, and one request.
private func send(_ nodes: NodeOptions, _ line: String, repeatable: Bool, until: String? = nil) throws -> QueueClient.Answer {
    let client = QueueClient(nodes: try nodes.parsed(), clientId: "meshq-\(ProcessInfo.processInfo.processIdentifier)",
                             tls: try nodes.tlsContext())
    defer { client.close() }
    let answer: QueueClient.Answer
    do {
        answer = try client.request(line, repeatable: repeatable, until: until)
    } catch let u as UnknownOutcome {
        FileOut.stderr("meshq: \(line): \(u); not sent again")
        throw ExitCode(1)
    } catch {
        FileOut.stderr("meshq: \(error)")
        throw ExitCode(1)
    }
    if answer.reply.hasPrefix("ERR ") {
        FileOut.stderr("meshq: \(line): \(answer.reply)")
        throw ExitCode(1)
    }
    return answer
}

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats", abstract: "Counts per queue (ready, delayed, inflight, dead, paused, oldest ready).")

    @OptionGroup var nodes: NodeOptions
    @Argument(help: "One queue (default: every queue the leader knows).") var queue: String?

    static let columns = ["ready", "delayed", "inflight", "dead", "paused_ms", "oldest_ready_ms"]

    func validate() throws {
        if let queue { try QueueArgs.checkQueue(queue) }
    }

    func run() throws {
        let a = try send(nodes, queue.map { "STATS \($0)" } ?? "STATS", repeatable: true, until: queue == nil ? "END" : nil)
        let lines = ([a.reply] + a.more).filter { $0 != "END" }
        var rows: [[String]] = [["queue"] + Self.columns]
        for line in lines {
            guard line.hasPrefix("STATS ") else { throw fail("unexpected reply: \(line)") }
            var f: [String: String] = [:]
            for w in line.split(separator: " ").dropFirst() {
                if let eq = w.firstIndex(of: "=") { f[String(w[..<eq])] = String(w[w.index(after: eq)...]) }
            }
            rows.append([f["queue"] ?? "?"] + Self.columns.map { f[$0] ?? "?" })
        }
        // Names left-aligned, counts right-aligned.
        let widths = (0..<rows[0].count).map { col in rows.map { $0[col].count }.max() ?? 0 }
        for r in rows {
            let cells = zip(r, widths).enumerated().map { i, cw in
                let pad = String(repeating: " ", count: cw.1 - cw.0.count)
                return i == 0 ? cw.0 + pad : pad + cw.0
            }
            print(cells.joined(separator: "  "))
        }
    }
}

struct PeekCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peek", abstract: "Show the task TAKE would lease next from a queue, without leasing it.")

    @OptionGroup var nodes: NodeOptions
    @Argument(help: "The queue.") var queue: String

    func validate() throws { try QueueArgs.checkQueue(queue) }

    func run() throws {
        print(try send(nodes, "PEEK \(queue)", repeatable: true).reply)
    }
}

struct KickCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kick", abstract: "Move tasks of a dead-letter queue back to the queues they came from.")

    @OptionGroup var nodes: NodeOptions
    @Argument(help: "The dead-letter queue (e.g. jobs.dead).") var queue: String
    @Argument(help: "Move at most this many (default: all).") var count: Int?

    func validate() throws {
        try QueueArgs.checkQueue(queue)
        if let count, !(0...Int(UInt32.max)).contains(count) {
            throw ValidationError("the count must be from 0 to \(UInt32.max); got \(count)")
        }
    }

    func run() throws {
        print(try send(nodes, "KICK \(queue)" + (count.map { " \($0)" } ?? ""), repeatable: false).reply)
    }
}

struct PauseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause", abstract: "Lease nothing from a queue for MS milliseconds (0 resumes it).")

    @OptionGroup var nodes: NodeOptions
    @Argument(help: "The queue.") var queue: String
    @Argument(help: "How long, in ms (at most 365 days; 0 resumes).") var ms: Int

    func validate() throws {
        try QueueArgs.checkQueue(queue)
        try QueueArgs.checkMs(ms, "the pause")
    }

    func run() throws {
        print(try send(nodes, "PAUSE \(queue) \(ms)", repeatable: true).reply)
    }
}
