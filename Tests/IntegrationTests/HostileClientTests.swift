// Hostile clients against a real meshqd (README, "Hostile clients"): a
// connection that never authenticates, one that trickles a partial line, one
// that guesses tokens (the tenth wrong token closing a connection is
// ClientSessionAuthTests': 16 s of delays here); and the safe defaults at start: the insecure_peer_port
// warning and secrets read from files. Timeouts are small here (a few hundred
// ms) and every wait polls against a generous deadline; the only waits that
// are not polls are the ones the timeout under test itself needs.
import Foundation
import Glibc
import MeshQClient
import MeshQTestSupport
import Reactor
import Testing

@Suite(.serialized) struct HostileClientTests {
    private func ms(since t: Date) -> Int { Int(Date().timeIntervalSince(t) * 1000) }

    @Test func anUnauthenticatedConnectionIsClosedAfterAuthTimeoutWhateverItSends() throws {
        let d = try Daemon(name: "authtimeout", cluster: "client_token = sesame\nauth_timeout_ms = 400").start()
        let silent = try d.client()
        let pinging = try d.client()
        let authed = try d.client()
        let t0 = Date()
        #expect(try authed.request("AUTH sesame") == "OK")
        // PING is served before AUTH, but does not keep the connection.
        #expect(try pinging.request("PING") == "PONG")
        let closing = try silent.readToEnd(timeoutMs: 10_000)
        #expect(ms(since: t0) >= 400)
        #expect(closing.hasPrefix("ERR AUTH authentication timeout"))
        var pongs = 0
        while ms(since: t0) < 10_000 {
            guard (try? pinging.request("PING")) == "PONG" else { break }
            pongs += 1
        }
        #expect(ms(since: t0) < 10_000, "a PINGing unauthenticated connection was never closed")
        // The authenticated one is past the timeout and still served.
        #expect(try authed.request("ENQUEUE still here").hasPrefix("OK "))
        #expect(try authed.request("PING") == "PONG")
    }

    @Test func withoutATokenThereIsNoAuthTimeout() throws {
        let d = try Daemon(name: "noauthtimeout", cluster: "auth_timeout_ms = 200").start()
        let c = try d.client()
        // Nothing to wait on but the timeout that must not fire: three of them.
        usleep(600_000)
        #expect(try c.request("PING") == "PONG")
    }

    @Test func aTrickledPartialLineIsClosedAfterIdleTimeout() throws {
        let d = try Daemon(name: "idle", cluster: "idle_timeout_ms = 400").start()
        let trickler = try d.client()
        let t0 = Date()
        var closed = false
        // One byte of a line that never ends, every 50 ms.
        for _ in 0..<400 {
            do { try trickler.send("x") } catch { closed = true; break }
            if let end = try? trickler.readToEnd(timeoutMs: 50) {
                #expect(end.isEmpty, "a closed idle connection gets no reply line")
                closed = true
                break
            }
        }
        #expect(closed)
        #expect(ms(since: t0) >= 400)
        #expect(ms(since: t0) < 15_000)
        // Complete lines keep a connection; a blocking DEQUEUE is not idleness.
        let busy = try d.client()
        #expect(try busy.request("PING") == "PONG")
        let t1 = Date()
        #expect(try busy.request("DEQUEUE 1200") == "EMPTY")
        #expect(ms(since: t1) >= 1_100)
        #expect(try busy.request("ENQUEUE after the wait").hasPrefix("OK "))
        // And then, saying nothing, it is closed too.
        #expect(try busy.readToEnd(timeoutMs: 10_000) == "")
    }

    @Test func wrongTokensAreAnsweredLaterAndLaterAndTheRightOneStillWorks() throws {
        let d = try Daemon(name: "authrate", cluster: "client_token = sesame").start()
        let c = try d.client()
        var t = Date()
        #expect(try c.request("AUTH nope") == "ERR AUTH wrong token")
        #expect(ms(since: t) < 100 + 2_000)  // the first is not delayed (a typo)
        t = Date()
        // Pipelined: the guess after the second wrong token waits for its answer.
        let r = try c.pipeline(["AUTH nope2", "AUTH nope3", "AUTH sesame", "ENQUEUE in"])
        #expect(r[0] == "ERR AUTH wrong token" && r[1] == "ERR AUTH wrong token")
        #expect(r[2] == "OK" && r[3].hasPrefix("OK "))
        #expect(ms(since: t) >= 100 + 200)
    }

    // MARK: safe defaults

    private func twoNodeConfig(_ dir: String, cluster: String, listenPeer: String? = nil) -> (String, UInt16) {
        let client = Harness.freePort()
        let peer = Harness.freePort()
        var extra: [String] = []
        if let listenPeer { extra.append("listen_peer = \(listenPeer):\(peer)") }
        let text = ConfigWriter(cluster: ConfigWriter.lines(cluster), nodes: [
            .loopback(id: 1, peerPort: Int(peer), clientPort: Int(client), dataDir: "\(dir)/data1", extra: extra),
            .loopback(id: 2, peerPort: Int(Harness.freePort()), clientPort: Int(Harness.freePort()), dataDir: "\(dir)/data2"),
        ]).text
        let path = dir + "/meshq.conf"
        try? text.write(toFile: path, atomically: true, encoding: .utf8)
        return (path, client)
    }

    private func startedLog(_ config: String, port: UInt16, dir: String) throws -> String {
        let log = dir + "/meshqd.log"
        let p = try Daemon.launch(config: config, log: log)
        defer { p.terminate(); p.waitUntilExit() }
        let up = Harness.eventually(timeout: 30) {
            (try? LineClient(host: "127.0.0.1", port: port, timeoutMs: 1_000).request("PING")) == "PONG"
        }
        #expect(up)
        return (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
    }

    @Test func anOpenPeerPortWithoutASecretIsWarnedAboutAtStart() throws {
        let dir = Harness.tempDir("insecure")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (open, port) = twoNodeConfig(dir, cluster: "", listenPeer: "0.0.0.0")
        let log = try startedLog(open, port: port, dir: dir)
        #expect(log.contains("level=warn event=insecure_peer_port node=1 peers=0.0.0.0:"))

        let dir2 = Harness.tempDir("secured")
        defer { try? FileManager.default.removeItem(atPath: dir2) }
        let (secured, port2) = twoNodeConfig(dir2, cluster: "cluster_secret = s3cret", listenPeer: "0.0.0.0")
        #expect(!(try startedLog(secured, port: port2, dir: dir2)).contains("insecure_peer_port"))

        let dir3 = Harness.tempDir("loopback")
        defer { try? FileManager.default.removeItem(atPath: dir3) }
        let (loopback, port3) = twoNodeConfig(dir3, cluster: "")
        #expect(!(try startedLog(loopback, port: port3, dir: dir3)).contains("insecure_peer_port"))
    }

    @Test func theClientTokenCanLiveInAFileOfItsOwn() throws {
        let dir = Harness.tempDir("tokenfile")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tokenPath = dir + "/token"
        try "from-a-file\n".write(toFile: tokenPath, atomically: true, encoding: .utf8)
        chmod(tokenPath, 0o600)
        let d = try Daemon(name: "tokenfile", cluster: "client_token_file = \(tokenPath)").start()
        let c = try d.client()
        #expect(try c.request("ENQUEUE x").hasPrefix("ERR AUTH "))
        #expect(try c.request("AUTH from-a-file") == "OK")
        #expect(try c.request("ENQUEUE x").hasPrefix("OK "))
    }

    @Test func anUnreadableOrDoubledSecretFileIsAConfigErrorNamingFileLineAndKey() throws {
        let d = Daemon(name: "badsecret", cluster: "cluster_secret_file = /nonexistent/meshq-secret")
        let r = try Harness.run(Harness.meshqdPath, ["--config", d.configPath, "--id", "1", "--check"])
        #expect(r.status == 2)
        #expect(r.output.contains("\(d.configPath):2: key 'cluster_secret_file': cannot read '/nonexistent/meshq-secret': no such file"))

        let both = Daemon(name: "bothsecret", cluster: "client_token = a\nclient_token_file = /etc/hostname")
        let r2 = try Harness.run(Harness.meshqdPath, ["--config", both.configPath, "--id", "1", "--check"])
        #expect(r2.status == 2)
        #expect(r2.output.contains(":3: key 'client_token_file': set both client_token (line 2) and client_token_file"))
    }
}
