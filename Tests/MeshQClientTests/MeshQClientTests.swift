// The client-side helpers against the daemon's own code: what ConfigWriter
// writes is what meshqd's ConfigParser reads back, and StatusLine reads every
// field of the STATUS reply NodeCore renders.
import MeshQClient
@testable import MeshQCore
import Testing

@Suite struct ConfigWriterTests {
    @Test func aWrittenClusterParsesBackToTheSameNodesAndSettings() throws {
        let w = ConfigWriter(comment: ["written by a test"],
                             cluster: ["fsync = never", "heartbeat_interval_ms = 50", "leader_timeout_ms = 400"],
                             nodes: (1...3).map {
                                 .loopback(id: $0, peerPort: 7100 + $0, clientPort: 7000 + $0, dataDir: "/tmp/d/\($0)")
                             })
        #expect(w.text.hasPrefix("# written by a test\n[cluster]\n"))
        let c = try ConfigParser.parse(w.text, file: "meshq.conf")
        #expect(c.nodes.map(\.id) == [1, 2, 3])
        #expect(c.nodes.map { "\($0.client)" } == ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"])
        #expect(c.nodes.map { "\($0.peer)" } == ["127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"])
        #expect(c.nodes.map(\.dataDir) == ["/tmp/d/1", "/tmp/d/2", "/tmp/d/3"])
        #expect(c.cluster.fsync == .never)
        #expect(c.cluster.heartbeatIntervalMs == 50)
        #expect(c.cluster.leaderTimeoutMs == 400)
    }

    @Test func extraNodeLinesLandInTheirOwnSection() throws {
        let w = ConfigWriter(cluster: ConfigWriter.lines("\nmax_connections = 7\n"), nodes: [
            .loopback(id: 1, peerPort: 9001, clientPort: 9002, dataDir: "/d1", extra: ["metrics = 127.0.0.1:9003"]),
            .loopback(id: 2, peerPort: 9011, clientPort: 9012, dataDir: "/d2"),
        ])
        let c = try ConfigParser.parse(w.text, file: "x.conf")
        #expect(c.cluster.maxConnections == 7)
        #expect(c.node(1)?.metrics.map { "\($0)" } == "127.0.0.1:9003")
        #expect(c.node(2)?.metrics == nil)
    }

    @Test func aBrokenLineIsPassedThroughForTheParserToReport() {
        let w = ConfigWriter(cluster: ["fsync = sometimes"], nodes: [
            .loopback(id: 1, peerPort: 1, clientPort: 2, dataDir: "/d"),
        ])
        #expect(throws: ConfigError.self) { try ConfigParser.parse(w.text, file: "bad.conf") }
    }
}

@Suite struct StatusLineTests {
    @Test func readsEveryFieldNodeCoreWrites() {
        let report = StatusReport(id: 2, role: "follower", leader: 3, epoch: 7, lamport: 99, commit: 41,
                                  ready: 5, inflight: 1, mailbox: 0, peersUp: 2, offsetMs: -0.25,
                                  extra: [("version", "1")])
        let f = StatusLine.fields("STATUS " + report.line)
        #expect(f == ["id": "2", "role": "follower", "leader": "3", "epoch": "7", "lamport": "99",
                      "commit": "41", "ready": "5", "inflight": "1", "mailbox": "0", "peers_up": "2",
                      "offset_ms": "-0.25", "version": "1"])
    }

    @Test func anythingButStatusIsNil() {
        #expect(StatusLine.fields("ERR NOLEADER no leader") == nil)
        #expect(StatusLine.fields("STATUSX a=1") == nil)
        #expect(StatusLine.fields("") == nil)
    }

    @Test func aValueKeepsItsEqualsSignsAndWordsWithoutOneAreSkipped() {
        #expect(StatusLine.fields("STATUS a=b=c junk d=") == ["a": "b=c", "d": ""])
    }
}
