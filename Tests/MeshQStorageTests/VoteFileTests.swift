import Foundation
import Testing
@testable import MeshQStorage

@Suite struct VoteFileTests {
    @Test func voteSurvivesReopenAndCorruptionIsAnError() throws {
        let dir = makeTempDir("vote")
        defer { removeTempDir(dir) }
        let v = VoteFile(directory: dir)
        #expect(try v.load() == 0)
        try v.store(7)
        try v.store(9)
        #expect(try VoteFile(directory: dir).load() == 9)
        try "nine".write(toFile: v.path, atomically: true, encoding: .utf8)
        #expect(throws: StorageError.self) { try v.load() }
    }
}
