// PeerSecurity: whether this node's cluster bus is open to anyone who can
// reach it, for the `insecure_peer_port` warning at start. The bus is
// protected when peers must prove membership: a cluster_secret, or mutual TLS
// (tls_ca with this node's certificate and key). Without protection it is still
// safe when every peer address (and this node's listen_peer) is loopback; a
// host name other than `localhost` counts as reachable from elsewhere, since
// it is not resolved here.

public enum PeerSecurity {
    /// True when a peer must authenticate before it takes part.
    public static func isPeerBusProtected(_ cluster: ClusterSettings, node: NodeConfig) -> Bool {
        cluster.clusterSecret != nil || node.tls.peerTLS
    }

    /// The peer addresses that expose an unprotected bus beyond this host
    /// (empty when protected, when every address is loopback, or when a
    /// single node opens no peer port at all).
    public static func exposedPeerAddresses(_ config: MeshQConfig, node: NodeConfig) -> [HostPort] {
        guard config.nodes.count > 1, !isPeerBusProtected(config.cluster, node: node) else { return [] }
        var out: [HostPort] = []
        for a in [node.listenPeer] + config.nodes.map(\.peer) where !isLoopback(a.host) && !out.contains(a) {
            out.append(a)
        }
        return out
    }

    public static func isLoopback(_ host: String) -> Bool {
        let h = host.lowercased()
        if h == "localhost" || h == "::1" || h == "0:0:0:0:0:0:0:1" { return true }
        let parts = h.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { p in UInt8(p) != nil }
    }
}
