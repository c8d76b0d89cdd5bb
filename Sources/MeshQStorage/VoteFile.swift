// VoteFile: the highest election epoch this node voted in, durable before the
// vote is sent, so a node that restarts can never vote twice in one epoch
// (which could elect two leaders in it); and the highest epoch it promised
// by voting for another node, below which it refuses replication even after
// a restart (the new leader's recovery trusted the log position that vote
// carried). Written by replace-and-rename, so a crash leaves the old values
// or the new ones, never a torn pair. A file of one number (written before
// promises existed) reads as that vote and no promise.
import Foundation
import Glibc
import SystemPackage

public struct VoteFile {
    public let directory: String
    public var path: String { directory + "/vote" }

    public struct Vote: Equatable, Sendable {
        public var voted: UInt64
        public var promised: UInt64
        public init(voted: UInt64, promised: UInt64) {
            self.voted = voted
            self.promised = promised
        }
    }

    public init(directory: String) { self.directory = directory }

    public func load() throws -> Vote {
        guard let data = FileManager.default.contents(atPath: path) else { return Vote(voted: 0, promised: 0) }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let nums = text.split(separator: " ").map { UInt64($0) }
        guard (1...2).contains(nums.count), let voted = nums[0], let promised = nums.count == 2 ? nums[1] : 0 else {
            throw StorageError("\(path) is corrupt: '\(text.prefix(40))'")
        }
        return Vote(voted: voted, promised: promised)
    }

    public func store(_ vote: Vote) throws {
        let tmp = path + ".tmp"
        do {
            let fd = try FileDescriptor.open(tmp, .writeOnly, options: [.create, .truncate, .closeOnExec],
                                             permissions: [.ownerReadWrite])
            try fd.closeAfter {
                _ = try fd.writeAll(Array("\(vote.voted) \(vote.promised)\n".utf8))
                guard fsync(fd.rawValue) == 0 else { throw StorageError.errno("fsync failed on", tmp) }
            }
            guard rename(tmp, path) == 0 else { throw StorageError.errno("cannot rename", tmp) }
            let dfd = try FileDescriptor.open(directory, .readOnly, options: [.directory, .closeOnExec])
            defer { try? dfd.close() }
            guard fsync(dfd.rawValue) == 0 else { throw StorageError.errno("fsync failed on", directory) }
        } catch let e as StorageError {
            throw e
        } catch {
            throw StorageError("cannot write", path, error)
        }
    }
}
