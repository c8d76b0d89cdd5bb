// Connection over libevent's OpenSSL bufferevents: the same API inside TLS
// (mutual TLS both ways), and TLS failures surfaced with OpenSSL's reason:
// a server certificate from another CA, a plain client on a TLS listener.
import Glibc
import MeshQTestSupport
import Reactor
import Testing

@Suite(.serialized, .disabled(if: TestCertificates.opensslPath == nil, "needs the openssl command"))
struct TLSConnectionTests {
    private func material() throws -> TestCertificates {
        let certs = TestCertificates(name: "reactor")
        try certs.makeCA("ca")
        try certs.makeCA("other")
        try certs.makeLeaf("server", signedBy: "ca")
        try certs.makeLeaf("client", signedBy: "ca")
        return certs
    }

    /// Runs the loop until `stop` or 10 s.
    private func run(_ loop: EventLoop) {
        let guardTimer = Timer(loop: loop) { loop.stop() }
        guardTimer.schedule(afterMs: 10_000)
        loop.run()
    }

    @Test func mutualTLSRoundTripThroughListenerAndConnect() throws {
        let certs = try material()
        let server = try TLSContext(certificate: certs.cert("server"), privateKey: certs.key("server"),
                                    trustedCA: certs.caCert("ca"), requirePeerCertificate: true)
        let client = try TLSContext(certificate: certs.cert("client"), privateKey: certs.key("client"),
                                    trustedCA: certs.caCert("ca"))
        let loop = EventLoop()
        var serverSide: [Connection] = []
        let listener = try Listener(loop: loop, address: SocketAddress.resolve(host: "127.0.0.1", port: 0), tls: server) { conn in
            serverSide.append(conn)
            var buf: [UInt8] = []
            conn.onReadable = { c in
                buf.removeAll()
                c.read(into: &buf)
                c.write(buf.map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0 })
            }
        }
        var received: [UInt8] = []
        var closedWith: Connection.CloseReason?
        Connection.connect(loop: loop, to: try SocketAddress.resolve(host: "127.0.0.1", port: listener.boundPort),
                           timeoutMs: 5_000, tls: client, serverName: "127.0.0.1") { conn, error in
            guard let conn else {
                Issue.record("connect failed: \(error ?? "?")")
                loop.stop()
                return
            }
            #expect(conn.isTLS && conn.isHandshakeDone)
            conn.onReadable = { c in
                c.read(into: &received)
                if received.count >= 10 { serverSide.first?.close() }
            }
            conn.onClose = { _, reason in closedWith = reason; loop.stop() }
            conn.write("ping\npong\n")
        }
        run(loop)
        #expect(String(decoding: received, as: UTF8.self) == "PING\nPONG\n")
        if case .eof? = closedWith {} else { Issue.record("expected eof, got \(String(describing: closedWith))") }
        #expect(serverSide.first?.isTLS == true)
    }

    @Test func aServerCertificateFromAnotherCAFailsTheConnectWithTheReason() throws {
        let certs = try material()
        let server = try TLSContext(certificate: certs.cert("server"), privateKey: certs.key("server"), trustedCA: nil)
        let client = try TLSContext(certificate: nil, privateKey: nil, trustedCA: certs.caCert("other"))
        let loop = EventLoop()
        let listener = try Listener(loop: loop, address: SocketAddress.resolve(host: "127.0.0.1", port: 0), tls: server) { _ in }
        var failure: String?
        Connection.connect(loop: loop, to: try SocketAddress.resolve(host: "127.0.0.1", port: listener.boundPort),
                           timeoutMs: 5_000, tls: client) { conn, error in
            failure = conn == nil ? (error ?? "?") : "connected"
            conn?.close()
            loop.stop()
        }
        run(loop)
        #expect(failure?.hasPrefix("tls: ") == true && failure?.contains("certificate verify failed") == true, "\(failure ?? "nil")")
    }

    @Test func aPlainClientOnATLSListenerClosesWithATLSReason() throws {
        let certs = try material()
        let server = try TLSContext(certificate: certs.cert("server"), privateKey: certs.key("server"), trustedCA: nil)
        let loop = EventLoop()
        var serverReason: Connection.CloseReason?
        var served = false
        let listener = try Listener(loop: loop, address: SocketAddress.resolve(host: "127.0.0.1", port: 0), tls: server) { conn in
            conn.onReadable = { _ in served = true }
            conn.onClose = { _, reason in serverReason = reason; loop.stop() }
        }
        var plain: Connection?
        Connection.connect(loop: loop, to: try SocketAddress.resolve(host: "127.0.0.1", port: listener.boundPort),
                           timeoutMs: 5_000) { conn, _ in
            plain = conn
            conn?.write("PING\n")
        }
        run(loop)
        #expect(!served)
        if case .tls(let why)? = serverReason {
            #expect(!why.isEmpty)
        } else {
            Issue.record("expected a TLS close, got \(String(describing: serverReason))")
        }
        plain?.close()
    }
}
