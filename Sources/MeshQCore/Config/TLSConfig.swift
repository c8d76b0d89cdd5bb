// TLSConfig: the TLS keys of one node as the file sets them (docs/configuration.md):
// `[cluster] tls_ca` with `[node.N] tls_cert`/`tls_key` turns on mutual TLS
// for every peer link; `client_tls` opens a TLS client port and
// `client_plain = off` closes the plain one. Paths only, with the line of
// each key: the files are read by the daemon (this module does no I/O), and
// an unreadable one is reported at the line that named it.

public struct TLSConfig: Sendable, Equatable {
    public struct File: Sendable, Equatable {
        public var path: String
        public var line: Int
        public var key: String
    }

    public var ca: File?
    public var cert: File?
    public var key: File?
    /// The TLS client port (listen and advertise), if any.
    public var clientTLS: HostPort?
    /// false: `client_plain = off`, only the TLS client port is open.
    public var clientPlain = true

    public init() {}

    /// Peer links use mutual TLS.
    public var peerTLS: Bool { ca != nil && cert != nil && key != nil }
    public var any: Bool { peerTLS || clientTLS != nil }

    /// One line for `meshqd --check`.
    public var summary: String {
        var parts = ["peers \(peerTLS ? "mutual TLS (ca=\(ca!.path) cert=\(cert!.path))" : "plain")"]
        parts.append("client_tls \(clientTLS.map { "\($0)" } ?? "off")")
        parts.append("client_plain \(clientPlain ? "on" : "off")")
        return "tls: " + parts.joined(separator: ", ")
    }
}
