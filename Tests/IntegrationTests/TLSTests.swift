// TLS on both ports (docs/configuration.md) against real meshqd processes, with a
// throwaway CA made by `openssl req`/`openssl x509`: the line protocol over
// `openssl s_client` and `meshq --tls`, a half-close, a plain client on the TLS port, a
// cluster over mutual TLS, a peer whose certificate comes from another CA,
// the key files checked at start, and a SIGHUP that swaps the certificate.
import Foundation
import Glibc
import MeshQClient
import MeshQTestSupport
import Reactor
import Testing

private let noOpenSSL = TestCertificates.opensslPath == nil

@Suite(.serialized, .disabled(if: noOpenSSL, "needs the openssl command (Debian package openssl)"))
struct TLSClientPortTests {
    /// One node with a TLS client port beside its plain one.
    private func node(_ name: String, _ certs: TestCertificates, extra: String = "") -> (Daemon, UInt16) {
        let tlsPort = Harness.freePort()
        let d = Daemon(name: name, node: """
            tls_cert = \(certs.cert("node"))
            tls_key = \(certs.key("node"))
            client_tls = 127.0.0.1:\(tlsPort)
            \(extra)
            """)
        return (d, tlsPort)
    }

    private func certificates(_ name: String) throws -> TestCertificates {
        let certs = TestCertificates(name: name)
        try certs.makeCA("ca")
        try certs.makeLeaf("node", signedBy: "ca")
        return certs
    }

    @Test func enqueueDequeueAckOverOpensslSClient() throws {
        let certs = try certificates("sclient")
        let (d, tlsPort) = node("tls-sclient", certs)
        try d.start()
        #expect(d.log.contains("client_tls=127.0.0.1:\(tlsPort)"))
        let s = try SClient(port: tlsPort, caFile: certs.caCert("ca"))
        #expect(try s.request("PING") == "PONG")
        let ok = try #require(try s.request("ENQUEUE hello over tls"))
        #expect(ok.hasPrefix("OK "), "\(ok)")
        let task = try #require(try s.request("DEQUEUE"))
        let parts = task.split(separator: " ", maxSplits: 3).map(String.init)
        #expect(parts.count == 4 && parts[0] == "TASK" && parts[3] == "hello over tls", "\(task)")
        #expect(try s.request("ACK \(parts[1])")?.hasPrefix("OK \(parts[1]) ") == true)
        // The plain port serves the same queue: nothing left.
        #expect(try d.client().request("DEQUEUE") == "EMPTY")
    }

    @Test func aHalfCloseOverTLSStillGetsEveryReply() throws {
        let certs = try certificates("halfclose")
        let (d, tlsPort) = node("tls-halfclose", certs)
        try d.start()
        let c = try LineClient(host: "127.0.0.1", port: tlsPort, timeoutMs: 10_000,
                               tls: TLSContext(certificate: nil, privateKey: nil, trustedCA: certs.caCert("ca")))
        try c.send("ENQUEUE sent before the half-close\nPING\n")
        c.shutdownWrite()
        let replies = try c.readToEnd().split(separator: "\n").map(String.init)
        #expect(replies.count == 2 && replies[0].hasPrefix("OK ") && replies[1] == "PONG", "\(replies)")
    }

    @Test func meshqCLIOverTLS() throws {
        let certs = try certificates("cli")
        let (d, tlsPort) = node("tls-cli", certs)
        try d.start()
        let tls = ["--nodes", "127.0.0.1:\(tlsPort)", "--tls", "--cacert", certs.caCert("ca")]
        let enq = try CLI.run(["enqueue"] + tls + ["payload over tls"])
        #expect(enq.status == 0, "\(enq.err)")
        #expect(enq.out.hasPrefix("OK "))
        let work = try CLI.run(["work", "--count", "1"] + tls)
        #expect(work.status == 0, "\(work.err)")
        #expect(work.out.contains("payload over tls"), "\(work.out)")
        let status = try CLI.run(["status"] + tls)
        #expect(status.status == 0 && status.out.contains("leader"), "\(status.out)\(status.err)")
        // A CA that did not sign the server's certificate: refused, exit 1, and why.
        try certs.makeCA("other")
        let wrong = try CLI.run(["enqueue", "--nodes", "127.0.0.1:\(tlsPort)", "--tls", "--cacert", certs.caCert("other"), "x"])
        #expect(wrong.status == 1)
        #expect(wrong.err.contains("certificate verify failed"), "\(wrong.err)")
        // --tls without --cacert is a usage error.
        #expect(try CLI.run(["status", "--nodes", "127.0.0.1:\(tlsPort)", "--tls"]).status == 2)
    }

    @Test func plainClientOnTheTLSPortGetsNothingAndIsClosed() throws {
        let certs = try certificates("plain")
        let (d, tlsPort) = node("tls-plain", certs, extra: "client_plain = off")
        try d.start(waitingOn: tlsPort, caFile: certs.caCert("ca"))
        #expect(d.log.contains("client=off"))
        // The plain port is closed.
        #expect((try? LineClient(host: "127.0.0.1", port: d.clientPort, timeoutMs: 2_000)) == nil)
        let c = try LineClient(host: "127.0.0.1", port: tlsPort, timeoutMs: 10_000)
        try c.send("PING\nENQUEUE sneaky\nSTATUS\n")
        // The server closes (a reset when our bytes were left unread).
        var got = ""
        do {
            got = try c.readToEnd(timeoutMs: 10_000)
        } catch {
            #expect("\(error)".contains("reset by peer"), "\(error)")
        }
        #expect(!got.contains("PONG") && !got.contains("OK") && !got.contains("STATUS"), "\(got)")
        // Nothing was enqueued, and TLS clients are still served.
        let t = try LineClient(host: "127.0.0.1", port: tlsPort, timeoutMs: 10_000,
                               tls: TLSContext(certificate: nil, privateKey: nil, trustedCA: certs.caCert("ca")))
        #expect(try t.request("DEQUEUE") == "EMPTY")
    }

    @Test func sighupSwapsTheCertificateForNewConnectionsOnly() throws {
        let certs = try certificates("reload")
        try certs.makeCA("next")
        try certs.makeLeaf("node2", signedBy: "next")
        let (d, tlsPort) = node("tls-reload", certs)
        try d.start()
        let oldCA = try TLSContext(certificate: nil, privateKey: nil, trustedCA: certs.caCert("ca"))
        let newCA = try TLSContext(certificate: nil, privateKey: nil, trustedCA: certs.caCert("next"))
        let before = try LineClient(host: "127.0.0.1", port: tlsPort, timeoutMs: 10_000, tls: oldCA)
        #expect(try before.request("PING") == "PONG")
        #expect((try? LineClient(host: "127.0.0.1", port: tlsPort, timeoutMs: 5_000, tls: newCA)) == nil)
        // New files at the same paths, then SIGHUP.
        try FileManager.default.removeItem(atPath: certs.cert("node"))
        try FileManager.default.removeItem(atPath: certs.key("node"))
        try FileManager.default.copyItem(atPath: certs.cert("node2"), toPath: certs.cert("node"))
        try FileManager.default.copyItem(atPath: certs.key("node2"), toPath: certs.key("node"))
        kill(d.process!.processIdentifier, SIGHUP)
        #expect(Harness.eventually(timeout: 20) { d.log.contains("event=tls_reloaded") }, "\(d.log)")
        let after = try LineClient(host: "127.0.0.1", port: tlsPort, timeoutMs: 10_000, tls: newCA)
        #expect(try after.request("PING") == "PONG")
        #expect((try? LineClient(host: "127.0.0.1", port: tlsPort, timeoutMs: 5_000, tls: oldCA)) == nil)
        // The connection opened before the reload keeps its session.
        #expect(try before.request("PING") == "PONG")
        // A bad key file at SIGHUP keeps the old certificate and says so.
        try "not a key\n".write(toFile: certs.key("node"), atomically: true, encoding: .utf8)
        kill(d.process!.processIdentifier, SIGHUP)
        #expect(Harness.eventually(timeout: 20) { d.log.contains("event=tls_reload_failed") }, "\(d.log)")
        #expect(try LineClient(host: "127.0.0.1", port: tlsPort, timeoutMs: 10_000, tls: newCA).request("PING") == "PONG")
    }

    @Test func badKeyFilesAreConfigErrorsNamingFileLineAndKey() throws {
        let certs = try certificates("badfiles")
        try certs.makeLeaf("other", signedBy: "ca")
        let cases: [(String, String)] = [
            ("tls_cert = \(certs.dir)/missing.pem\ntls_key = \(certs.key("node"))\nclient_tls = 127.0.0.1:1", "tls_cert"),
            ("tls_cert = \(certs.cert("node"))\ntls_key = \(certs.key("other"))\nclient_tls = 127.0.0.1:1", "tls_key"),
            ("tls_cert = \(certs.key("node"))\ntls_key = \(certs.key("node"))\nclient_tls = 127.0.0.1:1", "tls_cert"),
        ]
        for (lines, key) in cases {
            let d = Daemon(name: "tls-badfile", node: lines)
            for extra in [["--check"], []] {
                let r = try Harness.run(Harness.meshqdPath, ["--config", d.configPath, "--id", "1"] + extra)
                #expect(r.status == 2, "\(r.output)")
                #expect(r.output.contains("\(d.configPath):") && r.output.contains("key '\(key)'"), "\(r.output)")
            }
            #expect(!FileManager.default.fileExists(atPath: d.dataDir))
        }
    }
}

@Suite(.serialized, .disabled(if: noOpenSSL, "needs the openssl command (Debian package openssl)"))
struct TLSPeerTests {
    /// A 3-node config over mutual TLS; `override` gives a node other files.
    private func configure(_ c: Cluster, _ certs: TestCertificates, ca: String = "ca",
                           override: [Int: (ca: String, leaf: String)] = [:], secret: Bool = false) throws -> [Int: String] {
        var configs: [Int: String] = [:]
        for id in c.ids {
            let (nodeCA, leaf) = override[id] ?? (ca, "node\(id)")
            let text = ConfigWriter(cluster: ["heartbeat_interval_ms = 50", "leader_timeout_ms = 400", "election_timeout_ms = 200",
                                              "tls_ca = \(certs.caCert(nodeCA))"] + (secret ? ["cluster_secret = s3cret"] : []),
                                    nodes: c.ids.map { n in
                                        .loopback(id: n, peerPort: Int(c.peerPorts[n]!), clientPort: Int(c.clientPorts[n]!),
                                                  dataDir: "\(c.dir)/\(n)",
                                                  extra: ["tls_cert = \(certs.cert(n == id ? leaf : "node\(n)"))",
                                                          "tls_key = \(certs.key(n == id ? leaf : "node\(n)"))"])
                                    }).text
            let path = "\(c.dir)/node\(id).conf"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            configs[id] = path
        }
        return configs
    }

    private func certificates(_ name: String) throws -> TestCertificates {
        let certs = TestCertificates(name: name)
        try certs.makeCA("ca")
        for id in 1...3 { try certs.makeLeaf("node\(id)", signedBy: "ca") }
        return certs
    }

    @Test func threeNodesOverMutualTLSElectAndReplicate() throws {
        let certs = try certificates("peers")
        let c = Cluster(name: "tls-peers")
        try c.start(configs: try configure(c, certs, secret: true))
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        #expect(c.log(1).contains("peer_tls=mutual"))
        #expect(c.status(1)?["peers_up"] == "2")
        // Written through a follower, committed on a majority, read from another follower.
        let ok = try c.client(1).request("ENQUEUE over mutual tls")
        #expect(ok.hasPrefix("OK "), "\(ok)\n\(c.log(1).suffix(2_000))")
        let commit = c.status(3)?["commit"]
        #expect(Harness.eventually(timeout: 20) { c.status(2)?["commit"] == commit && c.status(1)?["commit"] == commit })
        let task = try c.client(2).request("DEQUEUE")
        #expect(task.hasSuffix(" over mutual tls"), "\(task)")
        for id in c.ids { #expect(!c.log(id).contains("peer_tls_failed"), "\(c.log(id))") }
    }

    @Test func aPeerWithACertificateFromAnotherCAIsRefusedAndLogged() throws {
        let certs = try certificates("rogue")
        try certs.makeCA("rogue")
        try certs.makeLeaf("intruder", signedBy: "rogue")
        let c = Cluster(name: "tls-rogue")
        // Node 3 trusts its own CA and presents a certificate it signed.
        try c.start(configs: try configure(c, certs, override: [3: ("rogue", "intruder")]))
        _ = try #require(c.awaitAgreement(on: 2, among: [1, 2]))
        // Both directions fail: 1 and 2 reject 3's certificate when 3 dials
        // them, and 3's certificate when they dial it (it is not signed by tls_ca).
        for id in [1, 2] {
            #expect(Harness.eventually(timeout: 20) {
                c.log(id).contains("event=peer_tls_failed") && c.log(id).contains("peer=3")
            }, "\(c.log(id))")
            #expect(c.status(id)?["peers_up"] == "1")
        }
        #expect(Harness.eventually(timeout: 20) { c.log(3).contains("event=peer_tls_failed") }, "\(c.log(3))")
        #expect(c.log(1).contains("certificate verify failed") || c.log(2).contains("certificate verify failed"))
        // The intruder never joins: it sees no peer and never leads.
        let s3 = try #require(c.status(3))
        #expect(s3["peers_up"] == "0" && s3["role"] != "leader")
        #expect(!c.log(3).contains("event=peer_up"))
        // The majority serves as usual.
        #expect(try c.client(1).request("ENQUEUE x").hasPrefix("OK "))
    }
}

extension Daemon {
    /// Starts meshqd and waits until its TLS port answers PING (client_plain = off).
    func start(waitingOn tlsPort: UInt16, caFile: String) throws {
        let p = try Daemon.launch(config: configPath, log: logPath)
        let ctx = try TLSContext(certificate: nil, privateKey: nil, trustedCA: caFile)
        let up = Harness.eventually(timeout: 30) {
            guard p.isRunning else { return true }
            return (try? LineClient(host: "127.0.0.1", port: tlsPort, timeoutMs: 1_000, tls: ctx).request("PING")) == "PONG"
        }
        if !up || !p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            throw HarnessError("meshqd did not come up: \(log)")
        }
        adopt(p)
    }
}
