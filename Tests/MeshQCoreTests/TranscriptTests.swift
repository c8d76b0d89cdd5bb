// Golden transcripts in the style of etcd raft's datadriven tests: each file
// in testdata/ is a script of inputs to a NodeCoreDriver cluster and, under
// each, what the nodes did (their log events at info level and above, the
// replies). A change of behaviour shows as a readable diff;
// MESHQ_REWRITE_TRANSCRIPTS=1 writes the new output back into the files.
//
//   command args...
//   ----
//   expected output (one line per event, `t=<ms> n<id> <event> k=v...`)
//   <blank line>
//
// Commands: nodes N | start [ids] | run MS | run-until-leader ID [within=MS]
// | enqueue NODE PAYLOAD | enqueue-many NODE COUNT | dequeue NODE | ack NODE TASK | crash ID
// | corrupt ID keep=N | isolate ID | reconnect ID | cut A B | heal
// | disk-full ID | space-returns ID | status.
// The nodes iterate sets of peers, so the transcripts hold with
// SWIFT_DETERMINISTIC_HASHING=1 (the Makefile sets it); without it they are skipped.
import Foundation
import Testing
import MeshQCore
import MeshQTestSupport

@Suite struct TranscriptTests {
    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("testdata")
    static var files: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasSuffix(".txt") }.sorted()
    }
    static var deterministic: Bool { ProcessInfo.processInfo.environment["SWIFT_DETERMINISTIC_HASHING"] != nil }

    @Test(.enabled(if: deterministic, "needs SWIFT_DETERMINISTIC_HASHING=1 (make test sets it)"), arguments: files)
    func transcript(_ name: String) throws {
        let url = Self.dir.appendingPathComponent(name)
        let text = try String(contentsOf: url, encoding: .utf8)
        let blocks = try TranscriptFile.parse(text)
        #expect(!blocks.isEmpty, "\(name) has no commands")
        let runner = TranscriptRunner()
        var rewritten = ""
        for b in blocks {
            let got = try runner.run(b.command)
            rewritten += b.leading + b.command + "\n----\n" + got.map { $0 + "\n" }.joined() + "\n"
            #expect(got == b.expected, "\(name): `\(b.command)`\n--- expected\n\(b.expected.joined(separator: "\n"))\n--- got\n\(got.joined(separator: "\n"))")
        }
        if ProcessInfo.processInfo.environment["MESHQ_REWRITE_TRANSCRIPTS"] != nil {
            try rewritten.write(to: url, atomically: true, encoding: .utf8)
        }
    }
}

/// One file: blocks of a command and its expected output.
struct TranscriptFile {
    struct Block {
        var leading: String
        var command: String
        var expected: [String]
    }

    struct BadFile: Error, CustomStringConvertible { let description: String }

    static func parse(_ text: String) throws -> [Block] {
        var blocks: [Block] = []
        var lines = text.components(separatedBy: "\n")[...]
        var leading = ""
        while let line = lines.popFirst() {
            if line.isEmpty || line.hasPrefix("#") {
                leading += line.isEmpty && leading.isEmpty ? "" : line + "\n"
                continue
            }
            guard lines.popFirst() == "----" else { throw BadFile(description: "`\(line)` is not followed by ----") }
            var expected: [String] = []
            while let l = lines.first, !l.isEmpty {
                expected.append(l)
                lines.removeFirst()
            }
            blocks.append(Block(leading: leading, command: line, expected: expected))
            leading = ""
        }
        return blocks
    }
}

/// Runs transcript commands against a NodeCoreDriver and renders what happened.
final class TranscriptRunner {
    private var driver: NodeCoreDriver?
    private var seen = 0
    /// Events whose every occurrence would only add noise.
    private static let quiet: Set<String> = ["time_sync", "peer_alive", "tasks_recovered"]

    struct BadCommand: Error, CustomStringConvertible { let description: String }

    func run(_ command: String) throws -> [String] {
        let words = command.split(separator: " ").map(String.init)
        guard let verb = words.first else { return [] }
        func int(_ i: Int) throws -> Int {
            guard i < words.count, let v = Int(words[i]) else { throw BadCommand(description: "`\(command)`: argument \(i) must be a number") }
            return v
        }
        func option(_ key: String) -> Int? {
            words.first { $0.hasPrefix(key + "=") }.flatMap { Int($0.dropFirst(key.count + 1)) }
        }
        if verb == "nodes" {
            driver = NodeCoreDriver(nodes: try int(1), logWindow: 64)
            return []
        }
        guard let d = driver else { throw BadCommand(description: "the first command must be `nodes N`") }
        var out: [String] = []
        switch verb {
        case "start":
            d.start(words.count > 1 ? try (1..<words.count).map(int) : nil)
        case "run":
            let end = d.now + Int64(try int(1))
            while d.now < end { d.step(); out += newEvents() }
        case "run-until-leader":
            let id = try int(1)
            let end = d.now + Int64(option("within") ?? 5_000)
            while d.now < end && !settled(under: id) { d.step(); out += newEvents() }
            out.append(settled(under: id) ? "t=\(d.now) n\(id) leads epoch=\(d.node(id).epoch), all it reaches follow"
                                          : "t=\(d.now) no settled leader \(id)")
        case "enqueue", "dequeue", "ack":
            let at = try int(1)
            let cmd: ClientCommand
            switch verb {
            case "enqueue": cmd = .enqueue(payload: Array(words.dropFirst(2).joined(separator: " ").utf8))
            case "dequeue": cmd = .dequeue(waitMs: nil)
            default: cmd = .ack(taskId: UInt64(try int(2)))
            }
            let ref = d.send(cmd, to: at)
            out += newEvents()
            let end = d.now + 5_000
            while d.replies[ref] == nil && d.now < end { d.step(); out += newEvents() }
            out.append("t=\(d.now) reply: " + (d.replies[ref].map(Self.render) ?? "none within 5 s"))
        case "enqueue-many":
            // COUNT enqueues at once (payloads t1, t2, ...), then steps until
            // all are answered: one line of how the answers went.
            let at = try int(1), count = try int(2)
            let refs = (1...count).map { d.send(.enqueue(payload: Array("t\($0)".utf8)), to: at) }
            out += newEvents()
            let end = d.now + 5_000
            while refs.contains(where: { d.replies[$0] == nil }) && d.now < end { d.step(); out += newEvents() }
            var tally: [String: Int] = [:]
            for r in refs { tally[d.replies[r].map { Self.render($0).split(separator: " ")[0].description } ?? "none", default: 0] += 1 }
            out.append("t=\(d.now) replies: " + tally.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
        case "crash":
            d.crash(try int(1))
        case "corrupt":
            d.corrupt(try int(1), keep: option("keep") ?? 0)
        case "isolate":
            d.isolate(try int(1))
        case "reconnect":
            d.reconnect(try int(1))
        case "cut":
            d.cutLink(from: try int(1), to: try int(2))
        case "heal":
            d.healLinks()
        case "disk-full":
            // A write refused for lack of space: the core halts.
            d.node(try int(1)).halt(now: d.now, reason: "disk full")
            d.pump()
        case "space-returns":
            // The driver rebuilds the halted node from its disk.
            let id = try int(1)
            d.crash(id)
            d.start([id])
        case "status":
            for id in d.ids {
                guard let n = d.nodes[id] else { out.append("n\(id) down"); continue }
                out.append("n\(id) \(n.role.rawValue) leader=\(n.leaderId.map(String.init) ?? "-") epoch=\(n.epoch) "
                           + "commit=\(n.commitIndex) last=\(n.lastIndex) tasks=\(n.store.count)"
                           + (n.rejoining ? " rejoining" : ""))
            }
            return out
        default:
            throw BadCommand(description: "unknown command `\(verb)`")
        }
        return out + newEvents()
    }

    private func settled(under id: Int) -> Bool {
        guard let d = driver, let l = d.nodes[id], l.role == .leader, l.serving else { return false }
        return d.live.allSatisfy { $0 == id || d.isolated.contains($0) || d.node($0).halted != nil || (d.node($0).leaderId == id && d.node($0).epoch == l.epoch) }
    }

    /// Events since the last call, at info level or above, node by node.
    private func newEvents() -> [String] {
        guard let d = driver else { return [] }
        let fresh = d.events[seen...].filter { $0.event.level >= .info && !Self.quiet.contains($0.event.name) }
        seen = d.events.count
        return fresh.enumerated().sorted { ($0.element.node, $0.offset) < ($1.element.node, $1.offset) }.map { e in
            let fields = e.element.event.fields.filter { $0.0 != "node" && $0.0 != "lamport" }
            return "t=\(d.now) n\(e.element.node) \(e.element.event.name)" + fields.map { " \($0.0)=\($0.1)" }.joined()
        }
    }

    /// A reply without its Lamport stamp (the verb and the task id are the point).
    static func render(_ r: Reply) -> String {
        let words = r.line.dropLast().split(separator: " ", maxSplits: 3)
        switch words.first {
        case "OK", "QUEUED": return words.prefix(2).joined(separator: " ")
        case "TASK": return ([words[0], words[1]] + (words.count > 3 ? [words[3]] : [])).joined(separator: " ")
        default: return String(r.line.dropLast())
        }
    }
}
