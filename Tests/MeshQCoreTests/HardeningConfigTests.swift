// The hardening keys of [cluster]: auth_timeout_ms, idle_timeout_ms, the
// secrets kept in files (cluster_secret_file, client_token_file), and which
// peer addresses PeerSecurity calls exposed for the insecure_peer_port warning.
import Testing
@testable import MeshQCore

private let nodes = "\n[node.1]\npeer = 127.0.0.1:7100\nclient = 127.0.0.1:7000\n"

private func parse(_ cluster: String, files: [String: String] = [:]) throws(ConfigError) -> MeshQConfig {
    try ConfigParser.parse("[cluster]\n" + cluster + nodes, file: "/etc/meshq/meshq.conf") { path in
        files[path].map { .success($0) } ?? .failure(ConfigFileReadError("no such file"))
    }
}

private func error(_ cluster: String, files: [String: String] = [:]) -> ConfigError? {
    do { _ = try parse(cluster, files: files); return nil } catch { return error }
}

@Suite struct HardeningConfigTests {
    @Test func timeoutsDefaultToTenSecondsForAuthAndOffForIdle() throws {
        let c = try parse("").cluster
        #expect(c.authTimeoutMs == 10_000 && c.idleTimeoutMs == 0)
        let set = try parse("auth_timeout_ms = 0\nidle_timeout_ms = 300000\n").cluster
        #expect(set.authTimeoutMs == 0 && set.idleTimeoutMs == 300_000)
    }

    @Test func badTimeoutsNameFileLineAndKey() {
        let e = error("idle_timeout_ms = -1\n")
        #expect(e?.description == "/etc/meshq/meshq.conf:2: key 'idle_timeout_ms': expected an integer number of milliseconds (0 = off) from 0 to 86400000, got '-1'")
        #expect(error("leader_timeout_ms = 900\nauth_timeout_ms = 10s\n")?.line == 3)
    }

    @Test func timeoutsAreReloadable() throws {
        let old = try parse("").cluster
        let new = try parse("idle_timeout_ms = 5000\nauth_timeout_ms = 2000\n").cluster
        #expect(old.reloadableChanges(to: new).map(\.key) == ["auth_timeout_ms", "idle_timeout_ms"])
        #expect(old.reloaded(from: new).idleTimeoutMs == 5000)
    }

    @Test func secretsAreReadFromTheirFilesWithoutTheTrailingNewline() throws {
        let c = try parse("cluster_secret_file = /etc/meshq/secret\nclient_token_file = /etc/meshq/token\n",
                          files: ["/etc/meshq/secret": "s3cret\n", "/etc/meshq/token": "t0k en\r\n\n"]).cluster
        #expect(c.clusterSecret == "s3cret")
        #expect(c.clientToken == "t0k en")
    }

    @Test func secretFileErrorsNameFileLineKeyAndPath() {
        #expect(error("cluster_secret_file = /etc/meshq/secret\n")?.description
            == "/etc/meshq/meshq.conf:2: key 'cluster_secret_file': cannot read '/etc/meshq/secret': no such file")
        #expect(error("client_token_file = token.txt\n")?.description
            == "/etc/meshq/meshq.conf:2: key 'client_token_file': must be an absolute path, got 'token.txt'")
        #expect(error("client_token_file = /t\n", files: ["/t": "\n"])?.message == "'/t' is empty")
        #expect(error("client_token_file = /t\n", files: ["/t": "a\nb\n"])?.message == "'/t' holds more than one line")
        let both = error("cluster_secret = x\ncluster_secret_file = /s\n", files: ["/s": "y"])
        #expect(both?.line == 3 && both?.key == "cluster_secret_file")
        #expect(both?.message == "set both cluster_secret (line 2) and cluster_secret_file: keep one")
        // No reader (a caller that does no I/O): a clear error, not a silent nil.
        #expect(throws: ConfigError.self) {
            try ConfigParser.parse("[cluster]\nclient_token_file = /t\n" + nodes, file: "x.conf")
        }
    }

    private func cluster(_ secret: String?, _ peers: [String], listen: String? = nil) throws -> (MeshQConfig, NodeConfig) {
        var text = "[cluster]\n" + (secret.map { "cluster_secret = \($0)\n" } ?? "")
        for (i, p) in peers.enumerated() {
            text += "[node.\(i + 1)]\npeer = \(p)\nclient = 127.0.0.1:\(7000 + i)\n"
            if i == 0, let listen { text += "listen_peer = \(listen)\n" }
        }
        let c = try ConfigParser.parse(text, file: "x.conf")
        return (c, c.nodes[0])
    }

    @Test func peerAddressesBeyondLoopbackWithoutASecretAreExposed() throws {
        let (lan, me) = try cluster(nil, ["10.0.0.1:7100", "10.0.0.2:7100", "127.0.0.1:7102"])
        #expect(PeerSecurity.exposedPeerAddresses(lan, node: me).map(\.description) == ["10.0.0.1:7100", "10.0.0.2:7100"])
        let (secret, me2) = try cluster("s", ["10.0.0.1:7100", "10.0.0.2:7100"])
        #expect(PeerSecurity.exposedPeerAddresses(secret, node: me2).isEmpty)
        let (local, me3) = try cluster(nil, ["127.0.0.1:7100", "localhost:7101", "[::1]:7102"])
        #expect(PeerSecurity.exposedPeerAddresses(local, node: me3).isEmpty)
        let (wild, me4) = try cluster(nil, ["127.0.0.1:7100", "127.0.0.1:7101"], listen: "0.0.0.0:7100")
        #expect(PeerSecurity.exposedPeerAddresses(wild, node: me4).map(\.description) == ["0.0.0.0:7100"])
        // Mutual TLS protects the bus as a secret does.
        let tls = try ConfigParser.parse("[cluster]\ntls_ca = /ca.pem\n[node.1]\npeer = 10.0.0.1:7100\nclient = 127.0.0.1:7000\n"
            + "tls_cert = /c1.pem\ntls_key = /k1.pem\n[node.2]\npeer = 10.0.0.2:7100\nclient = 127.0.0.1:7001\n"
            + "tls_cert = /c2.pem\ntls_key = /k2.pem\n", file: "x.conf")
        #expect(PeerSecurity.exposedPeerAddresses(tls, node: tls.nodes[0]).isEmpty)
        let (single, me5) = try cluster(nil, ["10.0.0.1:7100"])
        #expect(PeerSecurity.exposedPeerAddresses(single, node: me5).isEmpty)
        #expect(!PeerSecurity.isLoopback("127.0.0.1.example.com") && !PeerSecurity.isLoopback("128.0.0.1"))
    }
}
