// CLIRunner: runs the meshq built next to meshqd as a real process, with its
// stdout and stderr captured in files (so a chatty or long run can never block
// on a full pipe), either to completion or in the background.
import Foundation
import Glibc
import MeshQTestSupport

enum CLI {
    static var meshqPath: String {
        URL(fileURLWithPath: Harness.meshqdPath).deletingLastPathComponent().appendingPathComponent("meshq").path
    }

    struct Result {
        let status: Int32
        let out: String
        let err: String
        /// True when a signal ended meshq (terminationStatus is then the signal number).
        let signalled: Bool
    }

    /// A meshq started in the background; `wait()` collects its result.
    final class Running {
        let process: Process
        private let outPath: String
        private let errPath: String

        fileprivate init(process: Process, outPath: String, errPath: String) {
            self.process = process
            self.outPath = outPath
            self.errPath = errPath
        }

        var err: String { (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "" }

        func wait() -> Result {
            process.waitUntilExit()
            let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
            let r = Result(status: process.terminationStatus, out: out, err: err,
                           signalled: process.terminationReason == .uncaughtSignal)
            try? FileManager.default.removeItem(atPath: outPath)
            try? FileManager.default.removeItem(atPath: errPath)
            return r
        }

        deinit {
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
        }
    }

    /// Starts meshq with `stdin` on its standard input (then end of file).
    static func start(_ args: [String], stdin: String? = nil) throws -> Running {
        let dir = FileManager.default.temporaryDirectory.path
        let tag = "meshq-cli-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let outPath = "\(dir)/\(tag).out", errPath = "\(dir)/\(tag).err"
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: meshqPath)
        p.arguments = args
        p.standardOutput = FileHandle(forWritingAtPath: outPath)
        p.standardError = FileHandle(forWritingAtPath: errPath)
        let inp = Pipe()
        p.standardInput = inp
        try p.run()
        if let stdin { try inp.fileHandleForWriting.write(contentsOf: Data(stdin.utf8)) }
        try inp.fileHandleForWriting.close()
        return Running(process: p, outPath: outPath, errPath: errPath)
    }

    /// Runs meshq to completion.
    static func run(_ args: [String], stdin: String? = nil) throws -> Result {
        try start(args, stdin: stdin).wait()
    }
}
