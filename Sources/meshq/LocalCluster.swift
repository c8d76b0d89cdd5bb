// LocalCluster: N meshqd children on loopback, for `meshq cluster` and
// `meshq bench --local`. It writes one config for all of them (as an operator
// would), forwards each child's log lines to our stderr prefixed with its node,
// and stops them with SIGTERM, waiting for each to exit. With `tlsDir` (a
// ca.pem, node.pem and node.key, as scripts/tls-certs.sh writes them) peers
// use mutual TLS and each node opens a TLS client port beside the plain one.
import Foundation
import Glibc
import MeshQClient

final class LocalCluster: @unchecked Sendable {
    let dir: String
    let count: Int
    let basePort: Int
    let meshqd: String
    private(set) var children: [Process] = []
    private let output = NSLock()
    private var partial: [Int: Data] = [:]
    /// Forward child logs to stderr (cluster) or keep quiet (bench).
    var forwardLogs = true
    var onChildExit: (@Sendable (Int, Int32) -> Void)?
    /// TLS material for the cluster (nil: plain TCP everywhere).
    var tlsDir: String?

    init(dir: String, count: Int, basePort: Int, meshqd: String) {
        self.dir = dir
        self.count = count
        self.basePort = basePort
        self.meshqd = meshqd
    }

    var configPath: String { dir + "/meshq.conf" }

    func clientPort(_ id: Int) -> Int { basePort + id }

    /// The node's client_tls port (with `tlsDir`).
    func clientTLSPort(_ id: Int) -> Int { basePort + 200 + id }

    var clientAddresses: String { (1...count).map { "127.0.0.1:\(clientPort($0))" }.joined(separator: ",") }

    static func configText(count: Int, basePort: Int, dir: String, fsync: String, tlsDir: String? = nil) -> String {
        ConfigWriter(comment: ["Written by `meshq cluster`: \(count) node(s) on loopback."],
                     cluster: ["fsync = \(fsync)"] + (tlsDir.map { ["tls_ca = \($0)/ca.pem"] } ?? []),
                     nodes: (1...count).map { id in
                         let tls = tlsDir.map { ["tls_cert = \($0)/node.pem", "tls_key = \($0)/node.key",
                                                 "client_tls = 127.0.0.1:\(basePort + 200 + id)"] } ?? []
                         return .loopback(id: id, peerPort: basePort + 100 + id, clientPort: basePort + id,
                                          dataDir: "\(dir)/\(id)", extra: tls)
                     }).text
    }

    /// The meshqd beside this executable, else the one on PATH.
    static func defaultMeshqd() -> String {
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            let sibling = URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("meshqd").path
            if FileManager.default.isExecutableFile(atPath: sibling) { return sibling }
        }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin").split(separator: ":") {
            let p = "\(dir)/meshqd"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return "meshqd"
    }

    func writeConfig(fsync: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try LocalCluster.configText(count: count, basePort: basePort, dir: dir, fsync: fsync, tlsDir: tlsDir)
            .write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    func start() throws {
        for id in 1...count {
            do {
                children.append(try launch(id))
            } catch {
                stop()
                throw error
            }
        }
    }

    private func launch(_ id: Int) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: meshqd)
        p.arguments = ["--config", configPath, "--id", "\(id)"]
        let pipe = Pipe()
        p.standardError = pipe
        p.standardOutput = pipe
        pipe.fileHandleForReading.readabilityHandler = { [weak self] h in
            self?.forward(id, h.availableData)
        }
        p.terminationHandler = { [weak self] proc in
            self?.onChildExit?(id, proc.terminationStatus)
        }
        do {
            try p.run()
        } catch {
            throw Failure("cannot start \(meshqd): \(error)")
        }
        return p
    }

    /// SIGKILL node `id` (a crash: nothing flushed, nothing said).
    func kill9(_ id: Int) {
        let p = children[id - 1]
        guard p.isRunning else { return }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    /// SIGTERM node `id` and wait for it to exit (a clean stop).
    func stopNode(_ id: Int) {
        let p = children[id - 1]
        guard p.isRunning else { return }
        p.terminate()
        p.waitUntilExit()
    }

    func pid(_ id: Int) -> Int32 { children[id - 1].processIdentifier }

    func isRunning(_ id: Int) -> Bool { children[id - 1].isRunning }

    func dataDir(_ id: Int) -> String { "\(dir)/\(id)" }

    /// Starts node `id` again on its data directory.
    func restart(_ id: Int) throws {
        children[id - 1] = try launch(id)
    }

    /// STATUS of node `id` as key -> value, nil when it does not answer.
    func status(_ id: Int) -> [String: String]? {
        guard let c = try? LineClient(host: "127.0.0.1", port: UInt16(clientPort(id)), timeoutMs: 1_000),
              let line = try? c.request("STATUS") else { return nil }
        return StatusLine.fields(line)
    }

    private func forward(_ id: Int, _ data: Data) {
        output.lock()
        defer { output.unlock() }
        var buf = (partial[id] ?? Data()) + data
        while let nl = buf.firstIndex(of: 0x0A) {
            let line = buf[buf.startIndex..<nl]
            if forwardLogs {
                FileHandle.standardError.write(Data("[node \(id)] ".utf8) + line + Data([0x0A]))
            }
            buf = Data(buf[buf.index(after: nl)...])
        }
        partial[id] = buf
    }

    /// Waits until some node answers STATUS with role=leader.
    func waitForLeader(timeoutSeconds: Double) -> Bool {
        let end = Date().addingTimeInterval(timeoutSeconds)
        while Date() < end {
            for id in 1...count {
                if status(id)?["role"] == "leader" { return true }
            }
            if children.allSatisfy({ !$0.isRunning }) { return false }
            usleep(50_000)
        }
        return false
    }

    func stop() {
        for p in children where p.isRunning { p.terminate() }
        for p in children { p.waitUntilExit() }
        for p in children { (p.standardError as? Pipe)?.fileHandleForReading.readabilityHandler = nil }
    }
}
