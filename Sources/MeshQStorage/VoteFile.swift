// VoteFile: the highest election epoch this node voted in, durable before the
// vote is sent, so a node that restarts can never vote twice in one epoch
// (which could elect two leaders in it); and the highest epoch it promised
// by voting for another node, below which it refuses replication even after
// a restart (the new leader's recovery trusted the log position that vote
// carried). A ChecksummedFile: `<voted> <promised> crc32c=<hex>`, replaced
// whole, and a damaged one is an error, never "never voted". Files written
// before checksums (one number, or two) still read, and the next vote
// rewrites them with a checksum.
import Foundation

public struct VoteFile {
    public let directory: String
    private let file: ChecksummedFile
    public var path: String { file.path }

    public struct Vote: Equatable, Sendable {
        public var voted: UInt64
        public var promised: UInt64
        public init(voted: UInt64, promised: UInt64) {
            self.voted = voted
            self.promised = promised
        }
    }

    public init(directory: String) {
        self.directory = directory
        file = ChecksummedFile(directory: directory, name: "vote")
    }

    /// Whether the file is there at all (a data_dir that meshqd initialised
    /// always has one in a cluster; see Daemon).
    public var exists: Bool { FileManager.default.fileExists(atPath: path) }

    public func load() throws -> Vote {
        switch try file.read() {
        case .missing:
            return Vote(voted: 0, promised: 0)
        case .checked(let f):
            guard f.count == 2, let voted = UInt64(f[0]), let promised = UInt64(f[1]) else {
                throw StorageError("\(path) is damaged (checksum holds but the fields do not parse: '\(f.joined(separator: " "))')")
            }
            return Vote(voted: voted, promised: promised)
        case .unchecked(let f):
            let nums = f.map { UInt64($0) }
            guard (1...2).contains(nums.count), let voted = nums[0], let promised = nums.count == 2 ? nums[1] : 0 else {
                throw StorageError("\(path) is damaged (no checksum and not a vote: '\(f.joined(separator: " ").prefix(40))')")
            }
            return Vote(voted: voted, promised: promised)
        }
    }

    public func store(_ vote: Vote) throws {
        try file.write(["\(vote.voted)", "\(vote.promised)"])
    }
}
