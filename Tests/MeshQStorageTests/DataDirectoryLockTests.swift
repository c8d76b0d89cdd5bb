// One meshqd per data_dir: flock conflicts between two open file descriptions
// even inside one process, which lets a single test process play both daemons.
import Foundation
import Testing
@testable import MeshQStorage

@Suite struct DataDirectoryLockTests {
    @Test func secondLockFailsNamingThePidUntilReleased() throws {
        let dir = makeTempDir("lock")
        defer { removeTempDir(dir) }
        let first = try DataDirectoryLock.acquire(directory: dir)
        do {
            _ = try DataDirectoryLock.acquire(directory: dir)
            Issue.record("second lock should fail")
        } catch {
            #expect("\(error)".contains("in use by another meshqd"))
            #expect("\(error)".contains("pid \(getpid())"))
            #expect("\(error)".contains(dir))
        }
        first.release()
        first.release()        // idempotent
        let again = try DataDirectoryLock.acquire(directory: dir)
        again.release()
    }

    @Test func lockFileHoldsThePid() throws {
        let dir = makeTempDir("lock")
        defer { removeTempDir(dir) }
        let lock = try DataDirectoryLock.acquire(directory: dir)
        defer { lock.release() }
        let text = try String(contentsOfFile: dir + "/LOCK", encoding: .utf8)
        #expect(text == "\(getpid())\n")
    }

    @Test func stalePidFromAnEarlierOwnerIsReplaced() throws {
        let dir = makeTempDir("lock")
        defer { removeTempDir(dir) }
        // A longer pid left by a dead owner must not leave digits behind.
        try "99999999999\n".write(toFile: dir + "/LOCK", atomically: false, encoding: .utf8)
        let lock = try DataDirectoryLock.acquire(directory: dir)
        defer { lock.release() }
        #expect(try String(contentsOfFile: dir + "/LOCK", encoding: .utf8) == "\(getpid())\n")
    }

    @Test func droppingTheObjectReleasesTheLock() throws {
        let dir = makeTempDir("lock")
        defer { removeTempDir(dir) }
        do { _ = try DataDirectoryLock.acquire(directory: dir) }
        let again = try DataDirectoryLock.acquire(directory: dir)
        again.release()
    }

    @Test func createsAMissingDirectory() throws {
        let parent = makeTempDir("lock")
        defer { removeTempDir(parent) }
        let lock = try DataDirectoryLock.acquire(directory: parent + "/a/b")
        defer { lock.release() }
        #expect(FileManager.default.fileExists(atPath: parent + "/a/b/LOCK"))
    }
}
