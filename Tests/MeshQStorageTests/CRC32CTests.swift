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

/// The crc32 instruction (when this CPU has it) against the table loop: every
/// length around the 8-byte step, every misalignment, and chained seeds.
@Suite struct CRC32CHardwareTests {
    static func software(_ bytes: ArraySlice<UInt8>, seed: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBufferPointer { CRC32C.software(buffer: $0, seed: seed) }
    }

    @Test func softwareMatchesTheKnownVector() {
        #expect(Self.software(Array("123456789".utf8)[...]) == 0xE306_9283)
    }

    @Test func instructionAndTablesAgree() {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<4_200).map { _ in UInt8.random(in: 0...255, using: &rng) }
        for start in 0..<9 {
            for len in [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1_000, 4_096, 4_100] {
                let piece = bytes[start..<(start + len)]
                #expect(CRC32C.checksum(piece) == Self.software(piece), "start \(start) length \(len)")
                let seed = UInt32.random(in: 0...UInt32.max, using: &rng)
                #expect(CRC32C.checksum(piece, seed: seed) == Self.software(piece, seed: seed),
                        "start \(start) length \(len) seed \(seed)")
            }
        }
    }

    @Test func thisX86MachineUsesTheInstruction() {
        #if arch(x86_64)
        // Every x86-64 CPU since 2008 has SSE4.2; the machines we build on do.
        #expect(CRC32C.hardware)
        #endif
    }
}
