// CRC32C against published Castagnoli vectors, and the seed contract that lets
// a checksum be computed over pieces.
import Testing
@testable import MeshQStorage

@Suite struct CRC32CTests {
    @Test func knownVectors() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum(Array(UInt8(0)...UInt8(31))) == 0x46DD_794E)
        #expect(CRC32C.checksum([UInt8]()) == 0)
    }

    @Test func anyCollectionGivesTheSameAnswer() {
        let bytes = Array("xx123456789yy".utf8)
        #expect(CRC32C.checksum(bytes[2..<11]) == 0xE306_9283)
        #expect(CRC32C.checksum("123456789".utf8) == 0xE306_9283)
    }

    @Test func seedContinuesAChecksum() {
        let all = Array("123456789".utf8)
        for split in 0...all.count {
            let first = CRC32C.checksum(all[..<split])
            #expect(CRC32C.checksum(all[split...], seed: first) == 0xE306_9283, "split at \(split)")
        }
    }
}
