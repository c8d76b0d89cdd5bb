// The TLS keys (docs/configuration.md) as the parser sees them: what turns peer
// TLS on, and every inconsistent combination rejected at the right line and key.
import Testing
@testable import MeshQCore

private func parse(_ cluster: String, _ node1: String, _ node2: String = "tls_cert = /c2.pem\ntls_key = /k2.pem") throws(ConfigError) -> MeshQConfig {
    try ConfigParser.parse("""
        [cluster]
        \(cluster)

        [node.1]
        peer = 127.0.0.1:7101
        client = 127.0.0.1:7001
        \(node1)

        [node.2]
        peer = 127.0.0.1:7102
        client = 127.0.0.1:7002
        \(node2)
        """, file: "/etc/meshq/meshq.conf")
}

private func failure(_ cluster: String, _ node1: String, _ node2: String = "tls_cert = /c2.pem\ntls_key = /k2.pem") -> ConfigError? {
    do {
        _ = try parse(cluster, node1, node2)
        return nil
    } catch {
        return error
    }
}

@Suite struct TLSConfigTests {
    @Test func caCertAndKeyTurnOnPeerTLSAndClientTLSOpensAPort() throws {
        let c = try parse("tls_ca = /ca.pem", "tls_cert = /c1.pem\ntls_key = /k1.pem\nclient_tls = 127.0.0.1:7443\nclient_plain = off")
        let t = c.node(1)!.tls
        #expect(t.peerTLS)
        #expect(t.ca?.path == "/ca.pem" && t.ca?.line == 2 && t.ca?.key == "tls_ca")
        #expect(t.cert?.path == "/c1.pem" && t.cert?.line == 7)
        #expect(t.clientTLS == HostPort(host: "127.0.0.1", port: 7443))
        #expect(!t.clientPlain)
        #expect(c.node(2)!.tls.peerTLS && c.node(2)!.tls.clientPlain && c.node(2)!.tls.clientTLS == nil)
        #expect(c.summary(for: 1).contains("tls: peers mutual TLS"))
    }

    @Test func withoutTLSKeysNothingChanges() throws {
        let c = try parse("", "", "")
        #expect(!c.node(1)!.tls.any)
        #expect(c.node(1)!.tls.clientPlain)
    }

    @Test func aClientTLSPortNeedsNoCA() throws {
        let c = try parse("", "tls_cert = /c1.pem\ntls_key = /k1.pem\nclient_tls = 127.0.0.1:7443", "")
        #expect(!c.node(1)!.tls.peerTLS)
        #expect(c.node(1)!.tls.clientTLS != nil)
    }

    @Test func inconsistentKeysAreErrorsAtTheirLine() {
        // A certificate without its key, and the reverse.
        #expect(failure("", "tls_cert = /c1.pem", "").map { ($0.line, $0.key) } ?? (0, nil) == (7, "tls_cert"))
        #expect(failure("", "tls_key = /k1.pem", "").map { ($0.line, $0.key) } ?? (0, nil) == (7, "tls_key"))
        // tls_ca: every node needs a certificate (node 2 has none: reported at its header).
        let e = failure("tls_ca = /ca.pem", "tls_cert = /c1.pem\ntls_key = /k1.pem", "")
        #expect(e?.line == 10 && e?.key == "tls_cert", "\(String(describing: e))")
        #expect(e?.message.contains("tls_ca") == true)
        // client_tls without a certificate; client_plain = off without client_tls; a bad switch.
        #expect(failure("", "client_tls = 127.0.0.1:7443", "")?.key == "client_tls")
        #expect(failure("", "client_plain = off", "")?.key == "client_plain")
        #expect(failure("", "tls_cert = /c\ntls_key = /k\nclient_tls = 127.0.0.1:7443\nclient_plain = maybe", "")?.line == 10)
        // The TLS port may not collide with a client port; an empty path is refused.
        #expect(failure("", "tls_cert = /c\ntls_key = /k\nclient_tls = 127.0.0.1:7001", "")?.key == "client_tls")
        #expect(failure("tls_ca =", "tls_cert = /c\ntls_key = /k")?.key == "tls_ca")
        // Unknown keys stay unknown.
        #expect(failure("tls_cert = /c", "", "")?.message.contains("unknown key") == true)
    }
}
