// LamportFloorFile: a bound the node's Lamport clock has not passed, so a
// restart starts above every stamp it ever handed out, including those that
// left no trace in the log (DEQUEUE replies, peer messages) or whose log is
// gone. Invariant kept by the caller: the clock stays below the stored floor
// while the process runs; before it gets within `margin` of it, a new floor
// `clock + step` is written (so about one small fsync'd write per `step -
// margin` ticks). On start the clock is raised to the stored floor. A
// ChecksummedFile `lamport`: `<floor> crc32c=<hex>`; damage is an error.
import Foundation

public struct LamportFloorFile {
    private let file: ChecksummedFile
    public var path: String { file.path }
    /// How far ahead of the clock each new floor is written.
    public var step: UInt64 = 1_000_000
    /// How close the clock may come to the floor before a new one is written.
    public var margin: UInt64 = 500_000
    /// The floor on disk (0: none yet).
    public private(set) var floor: UInt64 = 0

    public init(directory: String) {
        file = ChecksummedFile(directory: directory, name: "lamport")
    }

    /// Reads the stored floor; 0 for a data_dir that never had one.
    public mutating func load() throws -> UInt64 {
        switch try file.read() {
        case .missing:
            floor = 0
        case .checked(let f):
            guard f.count == 1, let v = UInt64(f[0]) else {
                throw StorageError("\(path) is damaged (checksum holds but '\(f.joined(separator: " "))' is not a number)")
            }
            floor = v
        case .unchecked(let f):
            throw StorageError("\(path) is damaged (no checksum: '\(f.joined(separator: " ").prefix(40))')")
        }
        return floor
    }

    /// Writes a new floor if `clock` has come within `margin` of the stored
    /// one; true when it wrote.
    @discardableResult
    public mutating func advance(clock: UInt64) throws -> Bool {
        guard clock &+ margin >= floor else { return false }
        let next = clock &+ step
        try file.write(["\(next)"])
        floor = next
        return true
    }
}
