// meshq status: asks every node (not just the first) and prints one row each,
// so a split or a lagging follower shows at a glance.
import ArgumentParser
import MeshQClient
import Reactor

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "One row per node.")

    @OptionGroup var nodes: NodeOptions

    static let columns = ["id", "role", "leader", "epoch", "commit", "ready", "inflight", "mailbox", "peers_up", "offset_ms"]

    func run() throws {
        var rows: [[String]] = [["node"] + Self.columns.map { $0 == "peers_up" ? "peers" : $0 }]
        var answered = 0
        let tls = try nodes.tlsContext()
        for n in try nodes.parsed() {
            do {
                let c = try LineClient(host: n.host, port: n.port, timeoutMs: 3_000, tls: tls)
                let line = try c.request("STATUS")
                c.close()
                guard let f = StatusLine.fields(line) else { throw Failure(line) }
                rows.append(["\(n)"] + Self.columns.map { f[$0] ?? "?" })
                answered += 1
            } catch {
                rows.append(["\(n)", "down"] + Array(repeating: "-", count: Self.columns.count - 1))
            }
        }
        let widths = (0..<rows[0].count).map { col in rows.map { $0[col].count }.max() ?? 0 }
        for r in rows {
            print(zip(r, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  "))
        }
        if answered == 0 { throw ExitCode(1) }
    }
}
