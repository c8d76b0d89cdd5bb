import Foundation
import Testing
@testable import MeshQStorage

@Suite struct VoteFileTests {
    @Test func voteSurvivesReopenAndCorruptionIsAnError() throws {
        let dir = makeTempDir("vote")
        defer { removeTempDir(dir) }
        let v = VoteFile(directory: dir)
        #expect(try v.load() == VoteFile.Vote(voted: 0, promised: 0))
        try v.store(VoteFile.Vote(voted: 7, promised: 7))
        try v.store(VoteFile.Vote(voted: 9, promised: 7))
        #expect(try VoteFile(directory: dir).load() == VoteFile.Vote(voted: 9, promised: 7))
        // A file from before promises existed: one number, the vote.
        try "5\n".write(toFile: v.path, atomically: true, encoding: .utf8)
        #expect(try v.load() == VoteFile.Vote(voted: 5, promised: 0))
        try "nine".write(toFile: v.path, atomically: true, encoding: .utf8)
        #expect(throws: StorageError.self) { try v.load() }
    }
}
