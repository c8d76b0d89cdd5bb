// TestCertificates: a throwaway CA and certificates made with the `openssl`
// command line (`openssl req`, `openssl x509`) in a temporary directory, for
// the TLS tests. Every leaf certificate names 127.0.0.1 and localhost and may
// act as server and client (peer links use one certificate both ways).
import Foundation

public final class TestCertificates {
    public let dir: String

    /// The openssl binary, if installed (`.ci/run` installs it).
    public static var opensslPath: String? {
        ["/usr/bin/openssl", "/usr/local/bin/openssl"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    public init(name: String) {
        dir = Harness.tempDir("tls-\(name)")
    }

    deinit { try? FileManager.default.removeItem(atPath: dir) }

    public func caCert(_ ca: String) -> String { "\(dir)/\(ca).pem" }
    public func cert(_ name: String) -> String { "\(dir)/\(name).pem" }
    public func key(_ name: String) -> String { "\(dir)/\(name).key" }

    /// A self-signed CA: `caCert(ca)` and its key.
    public func makeCA(_ ca: String) throws {
        try openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=\(ca) test CA",
                     "-keyout", "\(dir)/\(ca).ca.key", "-out", caCert(ca)])
    }

    /// A leaf `cert(name)` / `key(name)` signed by the CA `ca`.
    public func makeLeaf(_ name: String, signedBy ca: String) throws {
        let csr = "\(dir)/\(name).csr", ext = "\(dir)/\(name).ext"
        try openssl(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=\(name)", "-keyout", key(name), "-out", csr])
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n"
            .write(toFile: ext, atomically: true, encoding: .utf8)
        try openssl(["x509", "-req", "-in", csr, "-CA", caCert(ca), "-CAkey", "\(dir)/\(ca).ca.key",
                     "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", cert(name)])
    }

    private func openssl(_ args: [String]) throws {
        guard let tool = TestCertificates.opensslPath else { throw HarnessError("openssl is not installed") }
        let r = try Harness.run(tool, args)
        guard r.status == 0 else { throw HarnessError("openssl \(args.joined(separator: " ")) failed: \(r.output)") }
    }
}

/// `openssl s_client` as a line client: lines go to its stdin, its stdout
/// (the server's replies, decrypted) is collected by a reader thread, and
/// `readLine` waits for the next one against a deadline.
public final class SClient: @unchecked Sendable {
    public let process: Process
    private let input: FileHandle
    private let lock = NSLock()
    private var received: [UInt8] = []
    private var consumed = 0
    private var ended = false

    public init(port: UInt16, caFile: String) throws {
        guard let tool = TestCertificates.opensslPath else { throw HarnessError("openssl is not installed") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        // -quiet: only the application data on stdout (it also keeps the
        // connection open after our stdin ends, until the server closes).
        p.arguments = ["s_client", "-quiet", "-connect", "127.0.0.1:\(port)", "-CAfile", caFile,
                       "-verify_return_error", "-verify_ip", "127.0.0.1"]
        let inPipe = Pipe(), outPipe = Pipe()
        p.standardInput = inPipe
        p.standardOutput = outPipe
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        input = inPipe.fileHandleForWriting
        let out = outPipe.fileHandleForReading
        let t = Thread { [weak self] in
            while true {
                let d = out.availableData
                guard let self else { return }
                self.lock.lock()
                if d.isEmpty { self.ended = true } else { self.received.append(contentsOf: d) }
                self.lock.unlock()
                if d.isEmpty { return }
            }
        }
        t.start()
    }

    public func send(_ line: String) throws {
        try input.write(contentsOf: Data((line + "\n").utf8))
    }

    /// The next reply line (without "\n"), or nil if none came within `timeout`.
    public func readLine(timeout: Double = 20) -> String? {
        var line: String?
        Harness.eventually(timeout: timeout) {
            lock.lock()
            defer { lock.unlock() }
            guard let nl = received[consumed...].firstIndex(of: 0x0A) else { return false }
            line = String(decoding: received[consumed..<nl], as: UTF8.self)
            consumed = nl + 1
            return true
        }
        return line
    }

    public func request(_ line: String, timeout: Double = 20) throws -> String? {
        try send(line)
        return readLine(timeout: timeout)
    }

    deinit {
        try? input.close()
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }
}
