// DiskSpaceProbe: whether a directory's file system takes writes again
// after a full disk. It writes `bytes` to a scratch file, syncs it and
// removes it: free-space figures can mislead (reserved blocks, quotas,
// delayed allocation), a real write cannot. Invariant: the scratch file
// never outlives the call.
import Foundation
import Glibc
import SystemPackage

public enum DiskSpaceProbe {
    public static func check(directory: String, bytes: Int = 1 << 20) throws {
        let path = directory + "/space-probe.tmp"
        defer { unlink(path) }
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(path, .writeOnly, options: [.create, .truncate, .closeOnExec],
                                         permissions: [.ownerReadWrite])
        } catch { throw StorageError("cannot create", path, error, op: "open") }
        try fd.closeAfter {
            let chunk = [UInt8](repeating: 0, count: min(bytes, 64 << 10))
            var left = bytes
            while left > 0 {
                let n = min(left, chunk.count)
                do { _ = try fd.writeAll(chunk[..<n]) } catch { throw StorageError("write failed on", path, error, op: "write") }
                left -= n
            }
            guard fdatasync(fd.rawValue) == 0 else { throw StorageError.errno("fdatasync failed on", path, op: "fdatasync") }
        }
    }
}
