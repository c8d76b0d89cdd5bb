// Damaged and failing disks with a real meshqd: a flipped byte in the middle
// of the log stops the node at start (naming file and offset) until the
// operator repairs; a damaged vote file is refused; an fsync error stops the
// node at once and nothing it could not persist got OK; a full filesystem
// (a small tmpfs, as root) gets disk_full and no OK for the lost write, the
// node stays up answering errors, and serves again by itself once space is
// freed, without a restart; the Lamport clock restarts above
// its stored floor even when the log is gone.
import Foundation
import Glibc
import Reactor
import MeshQClient
import MeshQTestSupport
import Testing

@Suite(.serialized) struct StorageFaultTests {
    private func logFile(_ d: Daemon) throws -> String {
        let logs = try FileManager.default.contentsOfDirectory(atPath: d.dataDir)
            .filter { $0.hasPrefix("log.") && !$0.contains(".corrupt") }.sorted()
        return d.dataDir + "/" + (logs.last ?? "log")
    }

    private func bytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

    /// Runs meshqd to its exit (it must not come up); returns status and log.
    private func runToExit(_ d: Daemon, args: [String] = [], env: [String: String] = [:]) throws -> Int32 {
        let p = try Daemon.launch(config: d.configPath, extraArgs: args, log: d.logPath, environment: env)
        let exited = Harness.eventually(timeout: 30) { !p.isRunning }
        if !exited { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        return exited ? p.terminationStatus : -1
    }

    /// One ENQUEUE per request, so each is its own write and fsync; stops at
    /// the first reply that is not OK (or a closed connection). Returns the
    /// payloads that got OK.
    private func enqueueUntilFailure(_ c: LineClient, prefix: String, size: Int, max: Int) -> [String] {
        var ok: [String] = []
        for i in 0..<max {
            let p = "\(prefix)\(i)-" + String(repeating: "x", count: size)
            guard let r = try? c.request("ENQUEUE \(p)"), r.hasPrefix("OK ") else { break }
            ok.append(p)
        }
        return ok
    }


    @Test func aByteFlippedMidLogRefusesToStartUntilRepaired() throws {
        let d = try Daemon(name: "corrupt").start()
        let c = try d.client()
        for i in 0..<60 { #expect(try c.request("ENQUEUE task-\(i)").hasPrefix("OK ")) }
        #expect(d.stop() == 0)
        let file = try logFile(d)
        var b = try bytes(file)
        let flip = b.count / 2
        b[flip] ^= 0x20
        try Data(b).write(to: URL(fileURLWithPath: file))

        #expect(try runToExit(d) == 1)
        let log = d.log
        #expect(log.contains("level=error event=log_corrupt"), "\(log.suffix(1500))")
        print(log.split(separator: "\n").filter { $0.contains("log_corrupt") }.joined(separator: "\n"))
        #expect(log.contains("file=\(file)"))
        let offset = try #require(log.split(separator: " ").first { $0.hasPrefix("offset=") }.flatMap { Int($0.dropFirst(7)) })
        #expect(offset <= flip && offset > flip - 200, "offset \(offset) for a flip at \(flip)")
        #expect(log.contains("meshqd --repair"), "the refusal says how to recover")
        #expect(log.components(separatedBy: "event=node_started").count == 2, "started only the first time")
        #expect(try bytes(file) == b, "a refusal changes nothing on disk")

        // --repair: starts with the records before the damage, the rest set aside.
        let p = try Daemon.launch(config: d.configPath, extraArgs: ["--repair"], log: d.logPath)
        defer { kill(p.processIdentifier, SIGTERM); p.waitUntilExit() }
        #expect(Harness.eventually(timeout: 30) { (try? d.client(timeoutMs: 1_000).request("PING")) == "PONG" })
        #expect(d.log.contains("moved_to=\(file).corrupt-at-\(offset)"))
        #expect(FileManager.default.fileExists(atPath: "\(file).corrupt-at-\(offset)"))
        let c2 = try d.client()
        let kept = try c2.drainAcking()
        #expect(!kept.isEmpty && kept.count < 60)
        #expect(kept == (0..<kept.count).map { "task-\($0)" }, "exactly the records before the damage")
        #expect(try c2.request("ENQUEUE after-repair").hasPrefix("OK "))
    }

    @Test func aDamagedVoteFileIsRefused() throws {
        let d = try Daemon(name: "vote").start()
        #expect(d.stop() == 0)
        try "7 7 crc32c=00000000\n".write(toFile: d.dataDir + "/vote", atomically: true, encoding: .utf8)
        #expect(try runToExit(d) == 1)
        #expect(d.log.contains("event=recovery_failed"))
        #expect(d.log.contains("\(d.dataDir)/vote is damaged"), "\(d.log.suffix(800))")
    }

    @Test(.enabled(if: testHooksCompiled, Comment(rawValue: needsTestHooks)))
    func anFsyncErrorStopsTheNodeAndNothingUnpersistedGotOK() throws {
        let d = Daemon(name: "eio")
        try d.start(environment: ["MESHQ_TEST_DISK_FAULT": "fdatasync:EIO:after=20"])
        #expect(d.log.contains("event=test_fault_disk"))
        let ok = enqueueUntilFailure(try d.client(), prefix: "e", size: 10, max: 100)
        #expect(ok.count < 20, "the 21st fdatasync failed, so fewer than 20 ENQUEUEs can have got OK")
        let p = try #require(d.process)
        #expect(Harness.eventually(timeout: 30) { !p.isRunning })
        p.waitUntilExit()
        #expect(p.terminationStatus == 1)
        let log = d.log
        #expect(log.contains("level=error event=disk_error"), "\(log.suffix(1500))")
        #expect(log.contains("op=fdatasync") && log.contains("errno=EIO"))
        try d.start()
        let drained = Set(try d.client().drainAcking())
        #expect(Set(ok).isSubset(of: drained), "an acknowledged task was lost")
    }

    @Test func aFullDiskGetsNoOKAndServiceResumesWhenSpaceIsFreed() throws {
        guard getuid() == 0 else {
            print("skipped aFullDiskGetsNoOKAndServiceResumesWhenSpaceIsFreed: mounting a tmpfs needs root")
            return
        }
        let d = Daemon(name: "full")
        try FileManager.default.createDirectory(atPath: d.dataDir, withIntermediateDirectories: true)
        guard (try? Harness.run("/bin/mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", d.dataDir]))?.status == 0 else {
            print("skipped aFullDiskGetsNoOKAndServiceResumesWhenSpaceIsFreed: cannot mount a tmpfs")
            return
        }
        defer {
            d.kill9()
            _ = try? Harness.run("/bin/umount", [d.dataDir])
        }
        // Leave about 512 KiB free.
        let ballast = d.dataDir + "/ballast"
        #expect(FileManager.default.createFile(atPath: ballast, contents: Data(count: (4 << 20) - (512 << 10))))
        try d.start()
        let c = try d.client()
        let ok = enqueueUntilFailure(c, prefix: "f", size: 4_000, max: 2_000)
        #expect(ok.count > 10 && ok.count < 200, "\(ok.count) OKs")
        #expect(d.log.contains("level=error event=disk_full"), "\(d.log.suffix(1500))")
        #expect(d.log.contains("errno=ENOSPC"))
        #expect(d.log.contains("event=node_stalled node=1 reason=disk_full"), "\(d.log.suffix(1500))")
        // Still up, on the same connection: no OK while the disk is full.
        let refused = try c.request("ENQUEUE while-full")
        #expect(refused.hasPrefix("ERR NOLEADER") && refused.contains("not applied"), "\(refused)")
        #expect(try c.request("PING") == "PONG")
        let p = try #require(d.process)
        #expect(p.isRunning)

        // Space returns: the node rebuilds from its disk by itself, no restart.
        try FileManager.default.removeItem(atPath: ballast)
        #expect(Harness.eventually(timeout: 30) { (try? c.request("ENQUEUE after-space"))?.hasPrefix("OK ") == true })
        #expect(d.log.contains("event=node_resumed node=1"), "\(d.log.suffix(1500))")
        #expect(p.isRunning)
        let drained = try c.drainAcking()
        #expect(Set(ok + ["after-space"]).isSubset(of: Set(drained)), "an acknowledged task was lost")
        #expect(!drained.contains("while-full"), "a write refused for lack of space was applied")
        #expect(drained.count <= ok.count + 1, "only what got OK is there")
    }

    @Test func theLamportClockRestartsAboveItsFloorEvenWithoutItsLog() throws {
        let d = try Daemon(name: "floor").start()
        let c = try d.client()
        for i in 0..<20 { _ = try c.request("ENQUEUE l\(i)") }
        let text = try String(contentsOfFile: d.dataDir + "/lamport", encoding: .utf8)
        let floor = try #require(UInt64(text.split(separator: " ")[0]))
        #expect(text.contains(" crc32c="))
        d.kill9()
        // The log and its snapshot gone (a wiped or lost log): the floor still holds.
        for f in try FileManager.default.contentsOfDirectory(atPath: d.dataDir) where f.hasPrefix("log.") || f.hasPrefix("snapshot.") {
            try FileManager.default.removeItem(atPath: d.dataDir + "/" + f)
        }
        try d.start()
        let status = try d.client().request("STATUS")
        let lamport = try #require(status.split(separator: " ").first { $0.hasPrefix("lamport=") }.flatMap { UInt64($0.dropFirst(8)) })
        #expect(lamport > floor, "\(status)")
    }
}
