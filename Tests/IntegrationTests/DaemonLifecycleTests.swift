// meshqd's command line, config errors, the data_dir lock and signals.
import Foundation
import Glibc
import Reactor
import MeshQClient
import MeshQTestSupport
import Testing

@Suite(.serialized) struct DaemonLifecycleTests {
    private func run(_ args: [String], timeout: Double = 30) throws -> (status: Int32, output: String) {
        let dir = Harness.tempDir("cli")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = dir + "/out.log"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Harness.meshqdPath)
        p.arguments = args
        guard FileManager.default.createFile(atPath: log, contents: nil),
              let fh = FileHandle(forWritingAtPath: log) else { throw HarnessError("cannot create \(log)") }
        p.standardError = fh
        p.standardOutput = fh
        try p.run()
        let exited = Harness.eventually(timeout: timeout) { !p.isRunning }
        if !exited { p.terminate() }
        p.waitUntilExit()
        return (p.terminationStatus, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }

    @Test func checkPrintsASummaryAndTouchesNothing() throws {
        let d = Daemon(name: "check")
        let r = try run(["--config", d.configPath, "--id", "1", "--check"])
        #expect(r.status == 0)
        #expect(r.output.contains("node"))
        #expect(!FileManager.default.fileExists(atPath: d.dataDir))
    }

    @Test func badConfigExitsTwoNamingFileLineAndKey() throws {
        let dir = Harness.tempDir("badconf")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/meshq.conf"
        try """
            [cluster]
            ack_timeout_ms = soon

            [node.1]
            peer = 127.0.0.1:7101
            client = 127.0.0.1:7001
            data_dir = \(dir)/data
            """.write(toFile: path, atomically: true, encoding: .utf8)
        for extra in [[], ["--check"]] {
            let r = try run(["--config", path, "--id", "1"] + extra)
            #expect(r.status == 2)
            #expect(r.output.contains("\(path):2"))
            #expect(r.output.contains("ack_timeout_ms"))
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/data"))
    }

    @Test func usageErrorsExitTwo() throws {
        #expect(try run(["--bogus"]).status == 2)
        #expect(try run(["--config", "/nonexistent/meshq.conf", "--id", "1"]).status == 2)
        let d = Daemon(name: "noid")
        let r = try run(["--config", d.configPath, "--id", "9"])
        #expect(r.status == 2)
        #expect(r.output.contains("node.9"))
    }

    @Test func secondDaemonOnTheSameDataDirRefusesToRun() throws {
        let d = try Daemon(name: "lock").start()
        // Same data_dir, different client port: only the lock can stop it.
        let other = d.dir + "/other.conf"
        try """
            [node.1]
            peer = 127.0.0.1:\(Harness.freePort())
            client = 127.0.0.1:\(Harness.freePort())
            data_dir = \(d.dataDir)
            """.write(toFile: other, atomically: true, encoding: .utf8)
        let r = try run(["--config", other, "--id", "1"])
        #expect(r.status != 0)
        #expect(r.output.contains("data_dir_locked"))
        // The first one is unharmed.
        #expect(try d.client().request("PING") == "PONG")
    }

    @Test func sigtermExitsZeroAfterLoggingNodeStopped() throws {
        let d = try Daemon(name: "term").start()
        #expect(try d.client().request("ENQUEUE x").hasPrefix("OK "))
        #expect(d.stop() == 0)
        #expect(d.log.contains("level=info event=node_stopped"))
        #expect(d.log.contains("event=node_started"))
        #expect(d.log.contains("backend=epoll"))
    }
}
