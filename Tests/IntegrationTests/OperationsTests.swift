// What an operator sees: journald priority prefixes, SIGHUP reloads.
import Foundation
import Glibc
import Reactor
import MeshQClient
import MeshQTestSupport
import Testing

@Suite(.serialized) struct OperationsTests {
    /// "dev:inode" of a file, as systemd puts it in $JOURNAL_STREAM.
    private func journalStream(of path: String) -> String {
        var st = stat()
        stat(path, &st)
        return "\(st.st_dev):\(st.st_ino)"
    }

    private func lines(_ log: String) -> [String] { log.split(separator: "\n").map(String.init) }

    @Test func journaldPrefixesMatchTheLevel() throws {
        let d = Daemon(name: "journal")
        try #require(FileManager.default.createFile(atPath: d.logPath, contents: nil), "cannot create \(d.logPath)")
        try d.start(environment: ["JOURNAL_STREAM": journalStream(of: d.logPath)])
        // A warn line: a reload with a broken file.
        try "[cluster\n".write(toFile: d.configPath, atomically: false, encoding: .utf8)
        kill(d.process!.processIdentifier, SIGHUP)
        #expect(Harness.eventually { d.log.contains("event=config_reload_failed") })
        let all = lines(d.log)
        #expect(!all.isEmpty)
        for l in all {
            let ok = (l.hasPrefix("<6>level=info ") || l.hasPrefix("<4>level=warn ") || l.hasPrefix("<7>level=debug ")
                || l.hasPrefix("<5>level=notice ") || l.hasPrefix("<3>level=error "))
            #expect(ok, "line without a matching priority: \(l)")
        }
        #expect(all.contains { $0.hasPrefix("<6>level=info event=node_started ") })
        #expect(all.contains { $0.hasPrefix("<4>level=warn event=config_reload_failed ") })
    }

    @Test func noPrefixesWhenJournalStreamNamesAnotherFile() throws {
        // A child whose stderr was redirected inherits the variable: it must not prefix.
        let d = try Daemon(name: "nojournal").start(environment: ["JOURNAL_STREAM": "1:1"])
        d.stop()
        let all = lines(d.log)
        #expect(!all.isEmpty)
        #expect(all.allSatisfy { $0.hasPrefix("level=") })
    }

    @Test func sighupAppliesANewTimingAndSurvivesABrokenFile() throws {
        let d = try Daemon(name: "hup", cluster: "ack_timeout_ms = 60000").start()
        let c = try d.client()
        // Break the file: the node logs it and keeps serving with the old values.
        let good = try String(contentsOfFile: d.configPath, encoding: .utf8)
        try "ack_timeout_ms = 60000\n".write(toFile: d.configPath, atomically: false, encoding: .utf8)
        kill(d.process!.processIdentifier, SIGHUP)
        #expect(Harness.eventually { d.log.contains("event=config_reload_failed") })
        #expect(try c.request("PING") == "PONG")
        // A shorter lease takes effect for the next DEQUEUE.
        try good.replacingOccurrences(of: "ack_timeout_ms = 60000", with: "ack_timeout_ms = 300")
            .write(toFile: d.configPath, atomically: false, encoding: .utf8)
        kill(d.process!.processIdentifier, SIGHUP)
        #expect(Harness.eventually { d.log.contains("event=config_reloaded") })
        #expect(d.log.contains("ack_timeout_ms=60000->300"))
        #expect(try c.request("ENQUEUE short").hasPrefix("OK 1 "))
        #expect(try c.request("DEQUEUE").hasPrefix("TASK 1 "))
        let other = try d.client()
        let again = try other.request("DEQUEUE 20000")
        #expect(again.hasPrefix("TASK 1 "), "the 300 ms lease should have expired well within 20 s")
    }
}

@Suite(.serialized) struct MetricsTests {
    private func get(_ port: UInt16, _ path: String) throws -> (status: String, body: String) {
        let c = try LineClient(host: "127.0.0.1", port: port, timeoutMs: 10_000)
        try c.send("GET \(path) HTTP/1.0\r\nHost: localhost\r\n\r\n")
        let all = try c.readToEnd()
        let parts = all.components(separatedBy: "\r\n\r\n")
        return (String(parts[0].split(separator: "\r\n").first ?? ""), parts.dropFirst().joined(separator: "\r\n\r\n"))
    }

    /// Parses with the Prometheus project's own Python parser; returns name{labels} -> value.
    private func parse(_ text: String) throws -> [String: Double] {
        let dir = Harness.tempDir("prom")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try text.write(toFile: dir + "/metrics.txt", atomically: true, encoding: .utf8)
        let script = """
            import sys, json
            from prometheus_client.parser import text_string_to_metric_families
            out = {}
            for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
                for s in fam.samples:
                    labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                    out[s.name + ("{" + labels + "}" if labels else "")] = s.value
            print(json.dumps(out))
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script, dir + "/metrics.txt"]
        let pipe = Pipe()
        let err = Pipe()
        p.standardOutput = pipe
        p.standardError = err
        try p.run()
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw HarnessError("prometheus parser rejected /metrics: \(errText)") }
        return try JSONSerialization.jsonObject(with: out) as? [String: Double] ?? [:]
    }

    @Test func metricsParseAsPrometheusTextAndMoveWithTheLoad() throws {
        let port = Harness.freePort()
        let d = try Daemon(name: "metrics", node: "metrics = 127.0.0.1:\(port)").start()
        let health = try get(port, "/health")
        #expect(health.status.contains(" 200 "))
        #expect(health.body.contains("role=leader leader=1"))
        #expect(try get(port, "/nope").status.contains(" 404 "))

        let before = try parse(try get(port, "/metrics").body)
        #expect(before["meshq_role{role=\"leader\"}"] == 1)
        #expect(before["meshq_epoch"] == 1)
        #expect(before["meshq_queue_ready"] == 0)
        let c = try d.client()
        _ = try c.pipeline((0..<100).map { "ENQUEUE m\($0)" })
        _ = try c.pipeline(["DEQUEUE", "DEQUEUE"])
        let after = try parse(try get(port, "/metrics").body)
        #expect(after["meshq_queue_ready"] == 98)
        #expect(after["meshq_queue_inflight"] == 2)
        #expect(after["meshq_commits_total"]! >= before["meshq_commits_total"]! + 100)
        #expect(after["meshq_commit_latency_seconds_count"]! > before["meshq_commit_latency_seconds_count"]!)
        #expect(after["meshq_client_bytes_received_total"]! > before["meshq_client_bytes_received_total"]!)
        #expect(after["meshq_client_connections"]! >= 1)
    }
}
