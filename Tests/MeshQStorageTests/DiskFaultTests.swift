// Disks that fail or fill: an fdatasync error poisons the log for good (never
// retried: fsyncgate) and says which call and errno; a write refused for
// space is rolled back to the last durable byte, marked recoverable, and the
// log goes on once space returns. A real full filesystem (tmpfs, as root)
// gives the same result as the injected fault.
import Foundation
import Glibc
import Testing
@testable import MeshQStorage

private func rec(_ i: Int, size: Int = 40) -> [UInt8] { Array("d\(i)-".utf8) + [UInt8](repeating: 7, count: size) }

private func size(_ path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? -1
}

@Suite struct DiskFaultTests {
    @Test func specsParse() {
        let f = DiskFaults.parse("fdatasync:EIO:after=3")
        #expect(f?.op == .fdatasync && f?.errno == EIO)
        #expect(DiskFaults.parse("write:ENOSPC")?.errno == ENOSPC)
        #expect(DiskFaults.parse("write:28")?.errno == 28)
        for bad in ["", "fsync:EIO", "write", "write:EWHAT", "write:EIO:after=-1", "write:EIO:later=2"] {
            #expect(DiskFaults.parse(bad) == nil, "\(bad)")
        }
    }

    @Test func anFdatasyncErrorIsFinalAndNamesTheCall() throws {
        let dir = makeTempDir("eio")
        defer { removeTempDir(dir) }
        let log = try DurableLog(directory: dir, fsync: true)
        _ = try log.recover()
        log.faults = DiskFaults(op: .fdatasync, errno: EIO, after: 2)
        for i in 0..<2 {
            log.append(rec(i))
            try log.sync()
        }
        log.append(rec(2))
        do {
            try log.sync()
            Issue.record("the third fdatasync must fail")
        } catch let e as StorageError {
            #expect(e.op == "fdatasync" && e.errno == EIO && e.errnoName == "EIO")
            #expect(!e.recoverable && !e.isDiskFull)
            #expect(e.description.contains(DurableLog.name("log", 0)) && e.description.contains("Input/output error"), "\(e)")
        }
        // Never retried: every later call fails, even with the fault gone.
        log.faults = nil
        log.append(rec(3))
        #expect(throws: StorageError.self) { try log.sync() }
        #expect(throws: StorageError.self) { try log.compact(snapshot: [1]) }
    }

    @Test func aWriteRefusedForSpaceIsRolledBackAndTheLogGoesOn() throws {
        let dir = makeTempDir("enospc")
        defer { removeTempDir(dir) }
        let log = try DurableLog(directory: dir, fsync: true)
        _ = try log.recover()
        log.append(rec(0))
        try log.sync()
        let durable = log.logBytes
        log.faults = DiskFaults(op: .write, errno: ENOSPC)
        for i in 1...20 { log.append(rec(i)) }
        do {
            try log.sync()
            Issue.record("the write must fail")
        } catch let e as StorageError {
            #expect(e.isDiskFull && e.recoverable && e.op == "write" && e.errnoName == "ENOSPC", "\(e)")
        }
        #expect(size(dir + "/" + DurableLog.name("log", 0)) == durable, "half a batch was written and cut back")
        #expect(log.pendingBytes == 0 && log.logBytes == durable)
        log.faults = nil
        log.append(rec(21))
        try log.sync()
        log.close()
        let r = try DurableLog(directory: dir, fsync: true).recover()
        #expect(r.records == [rec(0), rec(21)] && r.corruption == nil && r.droppedTailBytes == 0)
    }

    @Test func aSnapshotWithoutRoomChangesNothing() throws {
        let dir = makeTempDir("snapfull")
        defer { removeTempDir(dir) }
        let log = try DurableLog(directory: dir, fsync: true)
        _ = try log.recover()
        log.append(rec(0))
        try log.sync()
        log.faults = DiskFaults(op: .write, errno: ENOSPC)
        do {
            try log.compact(snapshot: Array("state".utf8))
            Issue.record("the snapshot write must fail")
        } catch let e as StorageError {
            #expect(e.isDiskFull && e.recoverable, "\(e)")
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(!names.contains { $0.hasPrefix("snapshot") }, "\(names)")
        log.faults = nil
        log.append(rec(1))
        try log.sync()
        try log.compact(snapshot: Array("later".utf8))
        log.close()
        let r = try DurableLog(directory: dir, fsync: true).recover()
        #expect(r.snapshot == Array("later".utf8) && r.records.isEmpty)
    }

    @Test func otherWriteErrorsAreFinal() throws {
        let dir = makeTempDir("werr")
        defer { removeTempDir(dir) }
        let log = try DurableLog(directory: dir, fsync: true)
        _ = try log.recover()
        log.faults = DiskFaults(op: .write, errno: EIO)
        log.append(rec(0))
        #expect(throws: StorageError.self) { try log.sync() }
        log.faults = nil
        log.append(rec(1))
        #expect(throws: StorageError.self) { try log.sync() }
    }

    /// A real full filesystem: a 1 MiB tmpfs (needs root; skipped otherwise).
    @Test func aRealFullFilesystemRollsBack() throws {
        guard getuid() == 0 else {
            print("skipped: mounting a tmpfs needs root")
            return
        }
        let mnt = makeTempDir("tmpfs")
        defer { removeTempDir(mnt) }
        guard TmpfsMount.mount(mnt, bytes: 1 << 20) else {
            print("skipped: cannot mount a tmpfs at \(mnt)")
            return
        }
        defer { _ = TmpfsMount.umount(mnt) }
        let log = try DurableLog(directory: mnt + "/data", fsync: true)
        _ = try log.recover()
        var synced = 0
        var full: StorageError?
        for i in 0..<10_000 {
            log.append(rec(i, size: 4_000))
            do {
                try log.sync()
                synced += 1
            } catch let e as StorageError {
                full = e
                break
            }
        }
        let e = try #require(full, "a 1 MiB filesystem must fill")
        #expect(e.isDiskFull && e.recoverable, "\(e)")
        let r = try DurableLog(directory: mnt + "/data", fsync: true).recover()
        #expect(r.records.count == synced && r.corruption == nil && r.droppedTailBytes == 0)
    }
}

enum TmpfsMount {
    static func mount(_ dir: String, bytes: Int) -> Bool {
        run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(bytes)", "tmpfs", dir]) == 0
    }

    static func umount(_ dir: String) -> Bool { run("/bin/umount", [dir]) == 0 }

    private static func run(_ tool: String, _ args: [String]) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        guard (try? p.run()) != nil else { return -1 }
        p.waitUntilExit()
        return p.terminationStatus
    }
}
