// meshq work: lease, run, ack — in a loop. The payload goes to CMD's stdin;
// exit status 0 acks, anything else nacks (the task is ready again at once).
// SIGINT/SIGTERM end the loop only between tasks: a task in hand is always
// finished and acked, or nacked, never dropped with its lease.
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
        let client = QueueClient(nodes: try nodes.parsed(), clientId: clientId)
        client.timeoutMs = waitMs + 10_000
        let stop = StopFlag(message: "meshq: stopping after the current task")
        var done = 0
        while !stop.requested, count.map({ done < $0 }) ?? true {
            let r: String
            do {
                r = try client.request("DEQUEUE \(waitMs)")
            } catch {
                throw fail("\(error)")
            }
            if r == "EMPTY" { continue }
            let parts = r.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
            guard parts.count >= 3, parts[0] == "TASK" else { throw fail("unexpected reply: \(r)") }
            let id = parts[1]
            let payload = parts.count == 4 ? parts[3] : ""
            let ok: Bool
            if let exec {
                ok = runCommand(exec, input: payload)
            } else {
                print("\(id) \(payload)")
                ok = true
            }
            let verdict = try client.request("\(ok ? "ACK" : "NACK") \(id)")
            if verbose { FileOut.stderr("task=\(id) \(ok ? "acked" : "nacked") reply=\(verdict) lamport=\(client.lamport.clock.time)") }
            done += 1
        }
        client.close()
    }

    private func runCommand(_ cmd: String, input: String) -> Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", cmd]
        let pipe = Pipe()
        p.standardInput = pipe
        do {
            try p.run()
        } catch {
            FileOut.stderr("meshq: cannot run '\(cmd)': \(error)")
            return false
        }
        pipe.fileHandleForWriting.write(Data(input.utf8))
        try? pipe.fileHandleForWriting.close()
        p.waitUntilExit()
        return p.terminationStatus == 0
    }
}

