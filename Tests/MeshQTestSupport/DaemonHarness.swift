// DaemonHarness: real meshqd processes on loopback for integration tests. Each
// test gets a fresh directory, free ports, and a daemon whose stderr goes to a
// file the test can read. Every wait polls a condition against a generous
// deadline (2 busy cores), never a fixed sleep. Shared by every test target
// that starts processes (MeshQTestSupport).
import Foundation
import Glibc
import MeshQClient
import Reactor

public enum Harness {
    /// The meshqd built next to these tests (or $MESHQD_BIN).
    public static var meshqdPath: String {
        if let p = ProcessInfo.processInfo.environment["MESHQD_BIN"] { return p }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/meshqd").path
    }

    /// A port nobody listens on right now, below the kernel's ephemeral range
    /// (32768-60999): a port taken from that range can be handed, between a
    /// node's stop and its restart, to some outbound connection as its local
    /// port, and the restart then fails with EADDRINUSE. Each test process
    /// walks its own stretch of 10000-32767 (by pid) and never hands a port
    /// out twice.
    public static func freePort() -> UInt16 {
        portLock.lock()
        defer { portLock.unlock() }
        let loop = EventLoop()
        for _ in 0..<portSpan {
            let p = UInt16(10_000 + (portStart + portCursor) % portSpan)
            portCursor += 1
            guard let addr = try? SocketAddress.resolve(host: "127.0.0.1", port: p),
                  let l = try? Listener(loop: loop, address: addr, onAccept: { $0.close() }) else { continue }
            l.close()
            return p
        }
        return 0
    }

    private static let portSpan = 22_768
    private static let portStart = Int(getpid()) % 64 * 350
    nonisolated(unsafe) private static var portCursor = 0
    private static let portLock = NSLock()

    public static func tempDir(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("meshq-it-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Runs a program to completion; returns its status and stdout+stderr.
    public static func run(_ tool: String, _ args: [String]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: out, as: UTF8.self))
    }

    /// Polls `condition` until it holds or `timeout` passes.
    @discardableResult
    public static func eventually(timeout: Double = 20, _ condition: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }
}

public final class Daemon {
    public let dir: String
    public let clientPort: UInt16
    public let configPath: String
    public let logPath: String
    public private(set) var process: Process?
    public var dataDir: String { dir + "/data" }

    /// `cluster` and `node` are extra `key = value` lines for the two
    /// sections; `sections` is appended as it is (`[queue.NAME]` sections).
    public init(name: String, cluster: String = "", node: String = "", sections: String = "", clientPort: UInt16? = nil) {
        dir = Harness.tempDir(name)
        self.clientPort = clientPort ?? Harness.freePort()
        configPath = dir + "/meshq.conf"
        logPath = dir + "/meshqd.log"
        let text = ConfigWriter(cluster: ConfigWriter.lines(cluster), nodes: [
            .loopback(id: 1, peerPort: Int(Harness.freePort()), clientPort: Int(self.clientPort),
                      dataDir: "\(dir)/data", extra: ConfigWriter.lines(node)),
        ]).text + (sections.isEmpty ? "" : "\n" + sections + "\n")
        try? text.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// Starts meshqd and waits until it answers PING.
    @discardableResult
    public func start(environment: [String: String] = [:]) throws -> Daemon {
        let p = try Daemon.launch(config: configPath, log: logPath, environment: environment)
        process = p
        let up = Harness.eventually(timeout: 30) {
            guard p.isRunning else { return true }
            return (try? LineClient(host: "127.0.0.1", port: clientPort, timeoutMs: 1_000).request("PING")) == "PONG"
        }
        guard up, p.isRunning else {
            throw HarnessError("meshqd did not come up: \(log)")
        }
        return self
    }

    /// Takes over a meshqd started with `launch` (a test that waits for it its own way).
    public func adopt(_ p: Process) { process = p }

    public static func launch(config: String, id: Int = 1, extraArgs: [String] = [], log: String,
                       environment: [String: String] = [:]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Harness.meshqdPath)
        p.arguments = ["--config", config, "--id", "\(id)"] + extraArgs
        // Keep an existing log's inode: a test may have named it in JOURNAL_STREAM.
        if !FileManager.default.fileExists(atPath: log), !FileManager.default.createFile(atPath: log, contents: nil) {
            throw HarnessError("cannot create the log file \(log)")
        }
        guard let fh = FileHandle(forWritingAtPath: log) else { throw HarnessError("cannot open the log file \(log)") }
        fh.seekToEndOfFile()
        p.standardError = fh
        p.standardOutput = fh
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "JOURNAL_STREAM")
        env.removeValue(forKey: "NOTIFY_SOCKET")
        for (k, v) in environment { env[k] = v }
        p.environment = env
        try p.run()
        return p
    }

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    public func client(timeoutMs: Int = 10_000) throws -> LineClient {
        try LineClient(host: "127.0.0.1", port: clientPort, timeoutMs: timeoutMs)
    }

    /// SIGKILL: no chance to flush anything.
    public func kill9() {
        guard let p = process else { return }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        process = nil
    }

    /// SIGTERM and wait; returns the exit status.
    @discardableResult
    public func stop() -> Int32 {
        guard let p = process else { return -1 }
        p.terminate()
        p.waitUntilExit()
        process = nil
        return p.terminationStatus
    }

    deinit {
        if let p = process, p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: dir)
    }
}

public struct HarnessError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

extension LineClient {
    /// Sends every line in one write and reads one reply per line.
    public func pipeline(_ lines: [String]) throws -> [String] {
        try send(lines.map { $0 + "\n" }.joined())
        return try lines.map { _ in try readLine() }
    }
}
