// meshq enqueue: one task from the arguments, or one task per stdin line
// with `-` (sent pipelined, replies printed in order).
import ArgumentParser
import Foundation

struct EnqueueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "enqueue", abstract: "Add a task (or one per stdin line with -).")

    @OptionGroup var nodes: NodeOptions
    @Option(name: .customLong("client-id"), help: "Name used in logs and as task owner.")
    var clientId: String = "meshq-\(ProcessInfo.processInfo.processIdentifier)"
    @Flag(name: .short, help: "Show the Lamport clock.") var verbose = false
    @Argument(help: "The payload (words are joined by single spaces), or - for stdin.")
    var payload: [String] = []

    func validate() throws {
        if payload.isEmpty { throw ValidationError("a payload is required (or - to read stdin)") }
    }

    func run() throws {
        let client = QueueClient(nodes: try nodes.parsed(), clientId: clientId)
        defer { client.close() }
        var failed = false
        do {
            if payload == ["-"] {
                var batch: [String] = []
                func send() throws {
                    for r in try client.pipeline(batch.map { "ENQUEUE " + $0 }) {
                        print(r)
                        if r.hasPrefix("ERR") { failed = true }
                    }
                    batch.removeAll()
                }
                while let line = readLine(strippingNewline: true) {
                    if line.isEmpty { continue }
                    batch.append(line)
                    if batch.count == 1_000 { try send() }
                }
                if !batch.isEmpty { try send() }
            } else {
                let r = try client.request("ENQUEUE " + payload.joined(separator: " "))
                print(r)
                failed = r.hasPrefix("ERR")
            }
        } catch {
            throw fail("\(error)")
        }
        if verbose { FileOut.stderr("lamport=\(client.lamport.clock.time)") }
        if failed { throw ExitCode(1) }
    }
}
