// The vote file and the Lamport floor are checksummed: any damage is an
// error naming the file, never a silent "never voted" or a clock at zero.
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
        #expect(try String(contentsOfFile: v.path, encoding: .utf8).hasPrefix("9 7 crc32c="))
        #expect(!FileManager.default.fileExists(atPath: v.path + ".tmp"))
        // A file from before checksums: one number (the vote), or two.
        try "5\n".write(toFile: v.path, atomically: true, encoding: .utf8)
        #expect(try v.load() == VoteFile.Vote(voted: 5, promised: 0))
        try "6 4\n".write(toFile: v.path, atomically: true, encoding: .utf8)
        #expect(try v.load() == VoteFile.Vote(voted: 6, promised: 4))
        try "nine".write(toFile: v.path, atomically: true, encoding: .utf8)
        #expect(throws: StorageError.self) { try v.load() }
    }

    /// Every single-byte change of a checksummed vote is caught, as are a
    /// truncated and an empty file: none reads as an older or absent vote.
    @Test func everyDamageOfTheVoteFileIsAnError() throws {
        let dir = makeTempDir("vote")
        defer { removeTempDir(dir) }
        let v = VoteFile(directory: dir)
        try v.store(VoteFile.Vote(voted: 12, promised: 11))
        let good = [UInt8](try Data(contentsOf: URL(fileURLWithPath: v.path)))
        var damaged: [[UInt8]] = [[], Array(good.dropLast()), Array(good.prefix(3)), good + good]
        for i in good.indices {
            for bit in [0x01, 0x02, 0x08] {
                var b = good
                b[i] ^= UInt8(bit)
                damaged.append(b)
            }
        }
        for bytes in damaged {
            try Data(bytes).write(to: URL(fileURLWithPath: v.path))
            do {
                let read = try v.load()
                Issue.record("damaged vote \(String(decoding: bytes, as: UTF8.self).debugDescription) read as \(read)")
            } catch let e as StorageError {
                #expect(e.description.contains(v.path) && e.description.contains("damaged"), "\(e)")
            }
        }
    }

    @Test func lamportFloorStaysAheadOfTheClockAndSurvivesReopen() throws {
        let dir = makeTempDir("floor")
        defer { removeTempDir(dir) }
        var f = LamportFloorFile(directory: dir)
        #expect(try f.load() == 0)
        f.step = 1_000
        f.margin = 500
        #expect(try f.advance(clock: 10))                // no floor yet: written at 1,010
        #expect(f.floor == 1_010)
        #expect(try !f.advance(clock: 509))              // still more than 500 below
        #expect(try f.advance(clock: 510))               // within the margin: 1,510
        var again = LamportFloorFile(directory: dir)
        #expect(try again.load() == 1_510)
        // Damage is an error, as is a floor without a checksum.
        for text in ["1510\n", "1511 crc32c=00000000\n", ""] {
            try text.write(toFile: f.path, atomically: true, encoding: .utf8)
            #expect(throws: StorageError.self) { try again.load() }
        }
    }
}
