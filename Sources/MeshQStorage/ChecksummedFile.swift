// ChecksummedFile: a small one-line state file (the vote, the Lamport floor)
// that is replaced whole and checked on every read. The line is the fields
// followed by ` crc32c=<8 hex digits>` over the fields' bytes. Writing goes to
// `<name>.tmp`, fsync, rename over `<name>`, fsync of the directory: a crash
// leaves the old line or the new one, never half of each. Reading a line whose
// checksum fails (bit rot, a truncated or hand-edited file) is an error, never
// a default: a vote file read as "never voted" would let a node vote twice in
// one epoch. A missing file is the caller's to interpret (a fresh data_dir).
import Foundation
import Glibc
import SystemPackage

public struct ChecksummedFile: Sendable {
    public let path: String
    public let directory: String

    public init(directory: String, name: String) {
        self.directory = directory
        path = directory + "/" + name
    }

    public enum Content: Equatable, Sendable {
        case missing
        /// Fields whose checksum held.
        case checked([String])
        /// A line without a checksum (written before checksums existed).
        case unchecked([String])
    }

    public func read() throws -> Content {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch let e as CocoaError where e.code == .fileReadNoSuchFile {
            return .missing
        } catch {
            throw StorageError("cannot read", path, error, op: "read")
        }
        let text = String(decoding: data, as: UTF8.self)
        guard text.hasSuffix("\n"), text.filter({ $0 == "\n" }).count == 1 else {
            throw damaged("not one whole line", text)
        }
        let line = text.dropLast()
        guard let at = line.range(of: " crc32c=", options: .backwards) else {
            return .unchecked(line.split(separator: " ").map(String.init))
        }
        let fields = String(line[..<at.lowerBound])
        guard let crc = UInt32(line[at.upperBound...], radix: 16), line[at.upperBound...].count == 8,
              crc == CRC32C.checksum(Array(fields.utf8)) else {
            throw damaged("checksum mismatch", text)
        }
        return .checked(fields.split(separator: " ").map(String.init))
    }

    func damaged(_ why: String, _ text: String) -> StorageError {
        let shown = text.prefix(60).replacingOccurrences(of: "\n", with: "\\n")
        return StorageError("\(path) is damaged (\(why): '\(shown)')")
    }

    /// Removes the file durably (a missing file is fine).
    public func remove() throws {
        guard unlink(path) == 0 || errno == ENOENT else { throw StorageError.errno("cannot remove", path, op: "unlink") }
        try syncDirectory()
    }

    private func syncDirectory() throws {
        let dfd: FileDescriptor
        do {
            dfd = try FileDescriptor.open(directory, .readOnly, options: [.directory, .closeOnExec])
        } catch { throw StorageError("cannot open directory", directory, error, op: "open") }
        defer { try? dfd.close() }
        guard fsync(dfd.rawValue) == 0 else { throw StorageError.errno("fsync failed on", directory, op: "fsync") }
    }

    public func write(_ fields: [String]) throws {
        let line = fields.joined(separator: " ")
        let crc = String(CRC32C.checksum(Array(line.utf8)), radix: 16)
        let text = line + " crc32c=" + String(repeating: "0", count: 8 - crc.count) + crc + "\n"
        let tmp = path + ".tmp"
        do {
            let fd: FileDescriptor
            do {
                fd = try FileDescriptor.open(tmp, .writeOnly, options: [.create, .truncate, .closeOnExec],
                                             permissions: [.ownerReadWrite])
            } catch { throw StorageError("cannot create", tmp, error, op: "open") }
            try fd.closeAfter {
                do { _ = try fd.writeAll(Array(text.utf8)) } catch { throw StorageError("write failed on", tmp, error, op: "write") }
                guard fsync(fd.rawValue) == 0 else { throw StorageError.errno("fsync failed on", tmp, op: "fsync") }
            }
            guard rename(tmp, path) == 0 else { throw StorageError.errno("cannot rename \(tmp) to", path, op: "rename") }
        } catch {
            // Leave the old file as it was; a full disk gets its space back.
            // Nothing changed then (the old line stands): the failure can be
            // rolled back, however far the temporary file got.
            unlink(tmp)
            if let e = error as? StorageError, e.isDiskFull { throw e.rolledBack() }
            throw error
        }
        try syncDirectory()
    }
}
