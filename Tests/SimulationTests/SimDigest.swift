// SimDigest: an FNV-1a hash of everything a simulated run did — each traced
// event, each effect a node emitted (in order, with its node and time), each
// envelope delivered — and the generator's next draw at the end. Opt-in
// (MESHQ_SIM_DIGEST=dir writes one line per seed), it proves a refactoring
// of the simulator changed no run: the same seed gives the same digest.
// Invariant: it only reads; recording it consumes no random draw.
import Foundation

struct SimDigest {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    /// MESHQ_SIM_DIGEST=dir: where the per-seed digests go (nil: not recorded).
    static let directory = ProcessInfo.processInfo.environment["MESHQ_SIM_DIGEST"]
    static var enabled: Bool { directory != nil }

    mutating func add(_ s: String) {
        for b in s.utf8 {
            value ^= UInt64(b)
            value = value &* 0x100_0000_01b3
        }
        value ^= 0xff
        value = value &* 0x100_0000_01b3
    }

    /// Writes `lines` to `dir/name.txt` (one test's seeds, in order).
    static func write(_ lines: [String], name: String) {
        guard let dir = directory else { return }
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let text = lines.joined(separator: "\n") + "\n"
        _ = FileManager.default.createFile(atPath: "\(dir)/\(name).txt", contents: Data(text.utf8))
    }
}
