// NodeList: the `--nodes host:port,...` option. Clients try the nodes in
// order and move on when one fails, so a leader change is invisible to them.
// `--tls --cacert FILE` makes every connection TLS (the nodes' client_tls
// ports), the server certificate checked against FILE and the host dialled.
import ArgumentParser
import MeshQCore
import Reactor

struct NodeOptions: ParsableArguments {
    @Option(name: .long, help: "Nodes to try, in order (host:port,...).")
    var nodes: String = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"

    @Flag(help: "Connect with TLS (the nodes' client_tls ports); needs --cacert.")
    var tls = false

    @Option(help: ArgumentHelp("CA certificate(s) (PEM) that sign the servers' certificates.", valueName: "file"))
    var cacert: String?

    func validate() throws {
        if tls && cacert == nil { throw ValidationError("--tls needs --cacert FILE (the CA that signed the nodes' certificates)") }
        if !tls && cacert != nil { throw ValidationError("--cacert is only used with --tls") }
    }

    /// The client TLS context for --tls (nil without it); a bad file is a usage error.
    func tlsContext() throws -> TLSContext? {
        guard tls, let cacert else { return nil }
        do {
            return try TLSContext(certificate: nil, privateKey: nil, trustedCA: cacert)
        } catch {
            throw ValidationError("--cacert \(error)")
        }
    }

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
