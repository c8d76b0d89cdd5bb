import Testing
@testable import MeshQCore

private let sample = """
    [cluster]
    heartbeat_interval_ms = 100    ; leader -> followers
    leader_timeout_ms     = 500
    election_timeout_ms   = 300
    ack_timeout_ms        = 30000  ; lease length for DEQUEUE
    commit_timeout_ms     = 2000
    time_sync_interval_ms = 5000
    route_ttl             = 3
    max_payload_bytes     = 65536
    fsync                 = always ; always | never
    max_connections       = 10000
    max_memory_mb         = 1024
    log_level             = info
    # cluster_secret  = ...
    client_token = tok;en # the ';' inside a word is kept

    [node.1]
    peer   = 127.0.0.1:7100         ; cluster bus
    client = 127.0.0.1:7000
    data_dir = /tmp/meshq/1
    metrics = 127.0.0.1:9187

    [node.2]
    peer=127.0.0.2:7100
    client=127.0.0.2:7000
    listen_client = 0.0.0.0:7000

    [node.3]
    peer   = [::1]:7103
    client = localhost:7003
    """

private func parse(_ text: String) throws(ConfigError) -> MeshQConfig {
    try ConfigParser.parse(text, file: "/etc/meshq/meshq.conf")
}

/// The error a text produces (fails the test if it parses).
private func failure(_ text: String) -> ConfigError? {
    do {
        _ = try parse(text)
        Issue.record("expected a config error")
        return nil
    } catch {
        return error
    }
}

private let node1 = "[node.1]\npeer = 127.0.0.1:7101\nclient = 127.0.0.1:7001\n"

@Suite struct ConfigParserTests {
    @Test func fullSampleParsesToTypedValues() throws {
        let c = try parse(sample)
        #expect(c.cluster.ackTimeoutMs == 30_000)
        #expect(c.cluster.fsync == .always)
        #expect(c.cluster.logLevel == .info)
        #expect(c.cluster.clientToken == "tok;en")
        #expect(c.cluster.clusterSecret == nil)
        #expect(c.nodes.map(\.id) == [1, 2, 3])
        let n1 = try #require(c.node(1))
        #expect(n1.peer == HostPort(host: "127.0.0.1", port: 7100))
        #expect(n1.dataDir == "/tmp/meshq/1")
        #expect(n1.metrics == HostPort(host: "127.0.0.1", port: 9187))
        #expect(n1.listenClient == n1.client)
        let n2 = try #require(c.node(2))
        #expect(n2.listenClient == HostPort(host: "0.0.0.0", port: 7000))
        #expect(n2.client == HostPort(host: "127.0.0.2", port: 7000))
        #expect(n2.dataDir == "/var/lib/meshq/2")
        #expect(c.node(3)?.peer == HostPort(host: "::1", port: 7103))
        #expect(c.node(3)?.peer.description == "[::1]:7103")
        #expect(c.majority == 2)
    }

    @Test func defaultsWhenClusterSectionIsEmptyOrAbsent() throws {
        #expect(try parse(node1).cluster == ClusterSettings())
        #expect(try parse("[cluster]\n" + node1).cluster == ClusterSettings())
        let d = ClusterSettings()
        #expect(d.heartbeatIntervalMs == 100 && d.leaderTimeoutMs == 500 && d.electionTimeoutMs == 300)
        #expect(d.maxPayloadBytes == 65_536 && d.maxConnections == 10_000 && d.maxMemoryMB == 1_024)
    }

    @Test func crlfAndCommentsInEveryPosition() throws {
        let c = try parse("# top\r\n; also\r\n[cluster] # trailing\r\n\tack_timeout_ms = 750 # why\r\n" + node1.replacingCRLF())
        #expect(c.cluster.ackTimeoutMs == 750)
    }

    @Test func semicolonWithoutSpaceIsPartOfTheValue() {
        // "750;x" is not a number: the ';' did not start a comment.
        let e = failure("[cluster]\nack_timeout_ms = 750;x\n" + node1)
        #expect(e?.line == 2 && e?.key == "ack_timeout_ms")
    }

    @Test func unknownKeyNamesFileLineAndKey() {
        let e = failure("[cluster]\nack_timeout = 5\n" + node1)
        #expect(e == ConfigError(file: "/etc/meshq/meshq.conf", line: 2, key: "ack_timeout", message: e?.message ?? ""))
        #expect(e?.description.hasPrefix("/etc/meshq/meshq.conf:2: key 'ack_timeout': ") == true)
        let e2 = failure(node1 + "colour = blue\n")
        #expect(e2?.line == 4 && e2?.key == "colour")
    }

    @Test func duplicateKeyIsReportedAtTheSecond() {
        let e = failure("[cluster]\nfsync = always\n\nfsync = never\n" + node1)
        #expect(e?.line == 4 && e?.key == "fsync")
        let e2 = failure("[node.1]\npeer = 127.0.0.1:1\npeer = 127.0.0.1:2\nclient = 127.0.0.1:3\n")
        #expect(e2?.line == 3 && e2?.key == "peer")
    }

    @Test func badValuesNameTheKey() {
        let cases: [(String, String)] = [
            ("ack_timeout_ms = soon", "ack_timeout_ms"), ("ack_timeout_ms = 0", "ack_timeout_ms"),
            ("ack_timeout_ms = -5", "ack_timeout_ms"), ("route_ttl = 256", "route_ttl"),
            ("fsync = sometimes", "fsync"), ("log_level = loud", "log_level"),
            ("max_connections = 1e3", "max_connections"), ("max_payload_bytes = ", "max_payload_bytes"),
            ("client_token =", "client_token"),
        ]
        for (line, key) in cases {
            let e = failure("[cluster]\n\(line)\n" + node1)
            #expect(e?.line == 2 && e?.key == key, "\(line) -> \(String(describing: e))")
        }
        let bad = failure("[node.1]\npeer = 127.0.0.1\nclient = 127.0.0.1:7001\n")
        #expect(bad?.line == 2 && bad?.key == "peer")
        let port = failure("[node.1]\npeer = 127.0.0.1:70000\nclient = 127.0.0.1:7001\n")
        #expect(port?.key == "peer")
        let rel = failure(node1 + "data_dir = var/lib\n")
        #expect(rel?.line == 4 && rel?.key == "data_dir")
    }

    @Test func heartbeatMustBeShorterThanLeaderTimeout() {
        let e = failure("[cluster]\nheartbeat_interval_ms = 100\nleader_timeout_ms = 100\n" + node1)
        #expect(e?.line == 3 && e?.key == "leader_timeout_ms")
    }

    @Test func missingRequiredKeyIsReportedAtTheSectionHeader() {
        let e = failure("[cluster]\n\n[node.4]\npeer = 127.0.0.1:7104\n")
        #expect(e?.line == 3 && e?.key == "client")
        let e2 = failure("[node.2]\nclient = 127.0.0.1:7002\n")
        #expect(e2?.line == 1 && e2?.key == "peer")
    }

    @Test func badSectionsAndLines() {
        #expect(failure("[nodes.1]\n")?.line == 1)
        #expect(failure("[node.0]\n")?.line == 1)
        #expect(failure("[node.-1]\n")?.line == 1)
        #expect(failure("[node.x]\n")?.line == 1)
        #expect(failure("[cluster\n")?.line == 1)
        #expect(failure(node1 + "[node.1]\n")?.line == 4)
        #expect(failure("fsync = always\n" + node1)?.key == "fsync")
        #expect(failure(node1 + "just some words\n")?.line == 4)
        #expect(failure("[cluster]\nfsync = always\n")?.message.contains("no [node.N]") == true)
    }

    @Test func duplicateAddressesAcrossNodes() {
        let e = failure(node1 + "[node.2]\npeer = 127.0.0.1:7101\nclient = 127.0.0.1:7002\n")
        #expect(e?.line == 5 && e?.key == "peer")
        let e2 = failure(node1 + "[node.2]\npeer = 127.0.0.1:7102\nclient = 127.0.0.1:7001\n")
        #expect(e2?.line == 6 && e2?.key == "client")
    }

    @Test func reloadableChangesListWhatDiffers() {
        let a = ClusterSettings()
        var b = a
        b.ackTimeoutMs = 1_000
        b.logLevel = .debug
        b.fsync = .never
        #expect(a.reloadableChanges(to: b) == [
            .init(key: "ack_timeout_ms", old: "30000", new: "1000"),
            .init(key: "log_level", old: "info", new: "debug"),
        ])
        #expect(a.nonReloadableChanges(to: b) == ["fsync"])
        let r = a.reloaded(from: b)
        #expect(r.ackTimeoutMs == 1_000 && r.logLevel == .debug && r.fsync == .always)
    }

    @Test func summaryNeverShowsSecrets() throws {
        let c = try parse("[cluster]\ncluster_secret = hunter2\nclient_token = swordfish\n" + node1)
        let s = c.summary(for: 1)
        #expect(!s.contains("hunter2") && !s.contains("swordfish"))
        #expect(s.contains("client_token set") && s.contains("majority 1"))
    }
}

private extension String {
    func replacingCRLF() -> String { split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\r\n") }
}
