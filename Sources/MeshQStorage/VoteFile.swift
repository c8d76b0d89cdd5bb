// VoteFile: the highest election epoch this node voted in, durable before the
// vote is sent, so a node that restarts can never vote twice in one epoch
// (which could elect two leaders in it). Written by replace-and-rename, so a
// crash leaves the old value or the new one, never a torn one.
import Foundation
import Glibc
import SystemPackage

public struct VoteFile {
    public let directory: String
    public var path: String { directory + "/vote" }

    public init(directory: String) { self.directory = directory }

    public func load() throws -> UInt64 {
        guard let data = FileManager.default.contents(atPath: path) else { return 0 }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let v = UInt64(text) else { throw StorageError("\(path) is corrupt: '\(text.prefix(40))'") }
        return v
    }

    public func store(_ epoch: UInt64) throws {
        let tmp = path + ".tmp"
        do {
            let fd = try FileDescriptor.open(tmp, .writeOnly, options: [.create, .truncate, .closeOnExec],
                                             permissions: [.ownerReadWrite])
            try fd.closeAfter {
                _ = try fd.writeAll(Array("\(epoch)\n".utf8))
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
