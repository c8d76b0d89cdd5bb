// meshq work --exec against a real meshqd (issue 14): a command that ignores
// its stdin, closes it early, or reads part of a large payload never kills the
// worker (it used to die of SIGPIPE right after leasing a task); the command's
// exit status alone decides ACK or NACK; the command itself runs with SIGPIPE
// at its default; and a worker whose stdout is closed gives its task back
// instead of acking work nobody saw.
import Foundation
import Glibc
import MeshQClient
import MeshQTestSupport
import Testing

@Suite(.serialized) struct WorkerExecTests {
    private func status(_ d: Daemon) throws -> [String: String] {
        let line = try d.client().request("STATUS")
        var out: [String: String] = [:]
        for w in line.split(separator: " ").dropFirst() {
            if let eq = w.firstIndex(of: "=") { out[String(w[..<eq])] = String(w[w.index(after: eq)...]) }
        }
        return out
    }

    private func work(_ d: Daemon, _ extra: [String]) throws -> CLI.Result {
        try CLI.run(["work", "--nodes", "127.0.0.1:\(d.clientPort)", "--wait-ms", "1000", "-v"] + extra)
    }

    @Test func execTrueTwentyTimesInARowAcksEveryTask() throws {
        let d = try Daemon(name: "work-true").start()
        let c = try d.client()
        for i in 1...40 { #expect(try c.request("ENQUEUE task-\(i)").hasPrefix("OK ")) }
        // Twenty workers one after the other, one task each...
        for run in 1...20 {
            let r = try work(d, ["--count", "1", "--exec", "true"])
            #expect(r.status == 0 && !r.signalled, "run \(run): status \(r.status) signalled=\(r.signalled) \(r.err)")
            #expect(r.err.contains("acked exit=0"), "run \(run): \(r.err)")
        }
        // ...and one worker through twenty more.
        let r = try work(d, ["--count", "20", "--exec", "true"])
        #expect(r.status == 0 && !r.signalled, "status \(r.status) signalled=\(r.signalled) \(r.err)")
        let s = try status(d)
        #expect(s["ready"] == "0" && s["inflight"] == "0" && s["tasks"] == "0", "\(s)")
    }

    @Test func aCommandThatClosesStdinEarlyIsJudgedByItsExitStatus() throws {
        // A payload larger than a pipe holds (64 KiB), so the write is sure to
        // meet a closed stdin.
        let d = try Daemon(name: "work-close", cluster: "max_payload_bytes = 262144").start()
        let c = try d.client()
        let big = String(repeating: "a", count: 200_000)
        #expect(try c.request("ENQUEUE " + big).hasPrefix("OK 1 "))
        #expect(try c.request("ENQUEUE " + big).hasPrefix("OK 2 "))
        let dir = Harness.tempDir("work-close-out")
        defer { try? FileManager.default.removeItem(atPath: dir) }

        let ok = try work(d, ["--count", "1", "--exec", "exec 0<&-; echo ran >> \(dir)/ran"])
        #expect(ok.status == 0 && !ok.signalled, "\(ok.status) \(ok.err)")
        #expect(ok.err.contains("task=1 acked exit=0 stdin_closed_after="), "\(ok.err)")
        let failing = try work(d, ["--count", "1", "--exec", "exec 0<&-; echo ran >> \(dir)/ran; exit 3"])
        #expect(failing.status == 0 && !failing.signalled, "\(failing.status) \(failing.err)")
        #expect(failing.err.contains("task=2 nacked exit=3 stdin_closed_after="), "\(failing.err)")

        #expect((try? String(contentsOfFile: dir + "/ran", encoding: .utf8)) == "ran\nran\n")
        let s = try status(d)
        #expect(s["ready"] == "1" && s["inflight"] == "0" && s["tasks"] == "1", "\(s)")   // task 2, nacked
        #expect(try c.request("DEQUEUE").hasPrefix("TASK 2 "))
    }

    @Test func aCommandThatReadsPartOfA64KiBPayloadIsAcked() throws {
        let d = try Daemon(name: "work-part").start()
        let c = try d.client()
        let payload = String((0..<65_536).map { Character(String($0 % 10)) })
        #expect(try c.request("ENQUEUE " + payload).hasPrefix("OK 1 "))
        let dir = Harness.tempDir("work-part-out")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try work(d, ["--count", "1", "--exec", "head -c 1000 > \(dir)/head"])
        #expect(r.status == 0 && !r.signalled, "\(r.status) \(r.err)")
        #expect(r.err.contains("task=1 acked exit=0"), "\(r.err)")
        #expect((try? String(contentsOfFile: dir + "/head", encoding: .utf8)) == String(payload.prefix(1000)))
        let s = try status(d)
        #expect(s["ready"] == "0" && s["inflight"] == "0" && s["tasks"] == "0", "\(s)")
    }

    @Test func theCommandRunsWithSIGPIPEAtItsDefault() throws {
        let d = try Daemon(name: "work-sigpipe").start()
        #expect(try d.client().request("ENQUEUE x").hasPrefix("OK 1 "))
        // Exit 0 (ACK) only if SIGPIPE (bit 13, mask 0x1000) is not ignored in the command.
        let r = try work(d, ["--count", "1", "--exec",
                             "m=$(awk '/^SigIgn/ {print $2}' /proc/$$/status); [ $(( 0x$m & 0x1000 )) -eq 0 ]"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.err.contains("task=1 acked exit=0"), "\(r.err)")
    }

    @Test func aClosedStdoutGivesTheTaskBackInsteadOfAckingIt() throws {
        let d = try Daemon(name: "work-stdout").start()
        #expect(try d.client().request("ENQUEUE seen-by-nobody").hasPrefix("OK 1 "))
        // stdout is a pipe nobody reads: its read end is closed before meshq starts.
        var fds: [Int32] = [-1, -1]
        #expect(pipe(&fds) == 0)
        close(fds[0])
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLI.meshqPath)
        p.arguments = ["work", "--nodes", "127.0.0.1:\(d.clientPort)", "--count", "1", "--wait-ms", "1000"]
        p.standardOutput = FileHandle(fileDescriptor: fds[1], closeOnDealloc: true)
        let err = Pipe()
        p.standardError = err
        try p.run()
        let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationReason == .exit && p.terminationStatus == 1, "\(p.terminationStatus) \(e)")
        #expect(e.contains("standard output is closed: task 1 was given back (NACK)"), "\(e)")
        let s = try status(d)
        #expect(s["ready"] == "1" && s["inflight"] == "0" && s["tasks"] == "1", "\(s)")
    }
}
