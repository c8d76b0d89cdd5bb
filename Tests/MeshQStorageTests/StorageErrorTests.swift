// Storage errors reach the operator as one journal line: it must name the file
// and the OS's reason.
import Foundation
import Testing
@testable import MeshQStorage

@Suite struct StorageErrorTests {
    @Test func namesThePathAndTheErrnoText() throws {
        let dir = makeTempDir("err")
        defer { removeTempDir(dir) }
        try FileManager.default.createDirectory(atPath: dir + "/LOCK", withIntermediateDirectories: true)
        do {
            _ = try DataDirectoryLock.acquire(directory: dir)
            Issue.record("a directory named LOCK cannot be opened for writing")
        } catch let e as StorageError {
            #expect(e.description.contains(dir + "/LOCK"))
            #expect(e.description.contains("Is a directory"))
        }
    }

    @Test func foundationErrorsAreUnwrappedToTheErrnoText() throws {
        let dir = makeTempDir("err")
        defer { removeTempDir(dir) }
        let file = dir + "/plain"
        try #require(FileManager.default.createFile(atPath: file, contents: Data([1])), "cannot create \(file)")
        do {
            _ = try DurableLog(directory: file + "/sub", fsync: false)
            Issue.record("a directory under a plain file cannot exist")
        } catch let e as StorageError {
            #expect(e.description.contains(file + "/sub"))
            #expect(e.description.contains("Not a directory"), "\(e)")
        }
    }
}
