// meshqd's command line, config errors, the data_dir lock and signals.
import Foundation
import Glibc
import Reactor
import MeshQClient
import MeshQTestSupport
import Testing

@Suite(.serialized) struct DaemonLifecycleTests {
    /// Runs meshqd to its exit: the status, stdout and stderr.
    private func run(_ args: [String], timeout: Double = 30) throws -> (status: Int32, stdout: String, stderr: String) {
        let dir = Harness.tempDir("cli")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (outPath, errPath) = (dir + "/out.log", dir + "/err.log")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Harness.meshqdPath)
        p.arguments = args
        guard FileManager.default.createFile(atPath: outPath, contents: nil),
              FileManager.default.createFile(atPath: errPath, contents: nil),
              let out = FileHandle(forWritingAtPath: outPath),
              let err = FileHandle(forWritingAtPath: errPath) else { throw HarnessError("cannot create logs in \(dir)") }
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let exited = Harness.eventually(timeout: timeout) { !p.isRunning }
        if !exited { p.terminate() }
        p.waitUntilExit()
        let read = { (path: String) in (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        return (p.terminationStatus, read(outPath), read(errPath))
    }

    @Test func checkPrintsASummaryAndTouchesNothing() throws {
        let d = Daemon(name: "check")
        let r = try run(["--config", d.configPath, "--id", "1", "--check"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("node"))
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
            #expect(r.stderr.contains("\(path):2"))
            #expect(r.stderr.contains("ack_timeout_ms"))
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/data"))
    }

    @Test func usageErrorsExitTwo() throws {
        let d = Daemon(name: "usage")
        for (args, says) in [
            (["--bogus"], "Unknown option '--bogus'"),
            (["--config", d.configPath, "stray"], "Unexpected argument 'stray'"),
            (["--id", "x", "--config", d.configPath], "The value 'x' is invalid for '--id <N>': node ids are positive integers"),
            (["--config", d.configPath, "--id", "0", "--check"], "The value '0' is invalid for '--id <N>'"),
            (["--config", d.configPath, "--id"], "Missing value for '--id <N>'"),
        ] {
            let r = try run(args)
            #expect(r.status == 2, "\(args): \(r)")
            #expect(r.stderr.hasPrefix("Error: \(says)"), "\(args): \(r.stderr)")
            #expect(r.stderr.contains("Usage: meshqd [--config <FILE>] [--id <N>] [--check] [--repair]"), "\(args): \(r.stderr)")
            #expect(r.stdout.isEmpty, "\(args): \(r.stdout)")
        }
        #expect(!FileManager.default.fileExists(atPath: d.dataDir))
        let missing = try run(["--config", "/nonexistent/meshq.conf", "--id", "1"])
        #expect(missing.status == 2)
        #expect(missing.stderr == "meshqd: config error: /nonexistent/meshq.conf: cannot read: no such file\n")
        let r = try run(["--config", d.configPath, "--id", "9"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("no [node.9] section"), "\(r.stderr)")
    }

    @Test func helpPrintsTheFlagsAndExitsZero() throws {
        for flag in ["--help", "-h"] {
            let r = try run([flag])
            #expect(r.status == 0)
            #expect(r.stderr.isEmpty, "\(flag): \(r.stderr)")
            #expect(r.stdout.contains("USAGE: meshqd [--config <FILE>] [--id <N>] [--check] [--repair]"), "\(flag): \(r.stdout)")
            for option in ["-c, --config <FILE>", "--id <N>", "--check", "--repair", "/etc/meshq/meshq.conf"] {
                #expect(r.stdout.contains(option), "\(flag) lacks \(option): \(r.stdout)")
            }
        }
    }

    @Test func checkNeedsNoIdForASingleNodeFile() throws {
        let d = Daemon(name: "checkone")
        let r = try run(["-c", d.configPath, "--check"])
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("this node: 1 "), "\(r.stdout)")
        #expect(!FileManager.default.fileExists(atPath: d.dataDir))
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
        #expect(r.stderr.contains("data_dir_locked"))
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
