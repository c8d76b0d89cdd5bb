// NodeConfig: one [node.N] section. `peer`/`client` are the advertised
// addresses; `listen_*` what this node binds (they default to the former).

public struct NodeConfig: Sendable, Equatable {
    public var id: Int
    public var peer: HostPort
    public var client: HostPort
    public var listenPeer: HostPort
    public var listenClient: HostPort
    public var dataDir: String
    public var metrics: HostPort?
    /// TLS keys (TLSConfig.swift): peer mutual TLS, the TLS client port.
    public var tls = TLSConfig()
    /// Line of the section header, for errors found after parsing.
    public var line: Int
}
