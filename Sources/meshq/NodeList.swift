// NodeList: the `--nodes host:port,...` option. Clients try the nodes in
// order and move on when one fails, so a leader change is invisible to them.
import ArgumentParser
import MeshQCore

struct NodeOptions: ParsableArguments {
    @Option(name: .long, help: "Nodes to try, in order (host:port,...).")
    var nodes: String = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"

    func parsed() throws -> [HostPort] {
        let list = nodes.split(separator: ",").map { String($0).trimmingSpaces() }.filter { !$0.isEmpty }
        guard !list.isEmpty else { throw ValidationError("--nodes is empty") }
        return try list.map { s in
            guard let hp = HostPort.parse(s) else { throw ValidationError("--nodes: '\(s)' is not host:port") }
            return hp
        }
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
