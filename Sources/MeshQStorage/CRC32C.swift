// CRC32C (Castagnoli, reflected polynomial 0x82F63B78): the checksum on every
// log frame and snapshot. It catches torn writes and bit rot; it is not a
// defence against tampering. Every record of every node passes through it,
// so it runs on the CPU's crc32 instruction (SSE4.2, the CCRC32C target)
// when the CPU has one, checked once at start; otherwise slicing-by-8 (eight
// tables, eight bytes per step; the byte-at-a-time loop was the largest
// single cost in a leader's profile). Both give the same value for the same
// bytes and seed (MeshQStorageTests compare them).
import CCRC32C

public enum CRC32C {
    /// Whether `checksum` runs on the CPU's crc32 instruction.
    public static let hardware: Bool = meshq_crc32c_hardware_available() != 0

    /// tables[k][b]: the CRC of byte b followed by k zero bytes.
    static let tables: [[UInt32]] = {
        var t = [[UInt32]](repeating: [UInt32](repeating: 0, count: 256), count: 8)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            t[0][i] = c
        }
        for k in 1..<8 {
            for i in 0..<256 { t[k][i] = (t[k - 1][i] >> 8) ^ t[0][Int(t[k - 1][i] & 0xFF)] }
        }
        return t
    }()

    public static func checksum(_ bytes: [UInt8], seed: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBufferPointer { checksum(buffer: $0, seed: seed) }
    }

    public static func checksum(_ bytes: ArraySlice<UInt8>, seed: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBufferPointer { checksum(buffer: $0, seed: seed) }
    }

    public static func checksum(_ bytes: some Collection<UInt8>, seed: UInt32 = 0) -> UInt32 {
        checksum(Array(bytes), seed: seed)
    }

    /// Over raw memory: no bounds check per byte (a restart checks every
    /// byte of the log; this is most of what it costs).
    private static func checksum(buffer b: UnsafeBufferPointer<UInt8>, seed: UInt32) -> UInt32 {
        guard hardware, let base = b.baseAddress else { return software(buffer: b, seed: seed) }
        return ~meshq_crc32c_hardware(~seed, base, b.count)
    }

    /// The table loop, whatever the CPU (tests compare it with the instruction).
    static func software(buffer b: UnsafeBufferPointer<UInt8>, seed: UInt32) -> UInt32 {
        tables.withUnsafeBufferPointer { tp in
            let t0 = tp[0], t1 = tp[1], t2 = tp[2], t3 = tp[3]
            let t4 = tp[4], t5 = tp[5], t6 = tp[6], t7 = tp[7]
            return t0.withUnsafeBufferPointer { t0 in t1.withUnsafeBufferPointer { t1 in
                t2.withUnsafeBufferPointer { t2 in t3.withUnsafeBufferPointer { t3 in
                t4.withUnsafeBufferPointer { t4 in t5.withUnsafeBufferPointer { t5 in
                t6.withUnsafeBufferPointer { t6 in t7.withUnsafeBufferPointer { t7 in
                    var c = ~seed
                    var i = 0
                    let end = b.count
                    while end - i >= 8 {
                        let lo = c ^ (UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24)
                        c = t7[Int(lo & 0xFF)] ^ t6[Int((lo >> 8) & 0xFF)] ^ t5[Int((lo >> 16) & 0xFF)] ^ t4[Int(lo >> 24)]
                            ^ t3[Int(b[i + 4])] ^ t2[Int(b[i + 5])] ^ t1[Int(b[i + 6])] ^ t0[Int(b[i + 7])]
                        i += 8
                    }
                    while i < end {
                        c = t0[Int((c ^ UInt32(b[i])) & 0xFF)] ^ (c >> 8)
                        i += 1
                    }
                    return ~c
                } } } } } } } }
        }
    }
}
