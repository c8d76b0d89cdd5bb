// DataDirectoryLock: one meshqd per data_dir. An exclusive flock(2) on
// <data_dir>/LOCK, held as long as the process keeps the descriptor; the
// kernel drops it when the process dies, even by kill -9, so there is no stale
// lock to clean up. The file holds the owner's pid, for the error message.
import Foundation
import Glibc
import SystemPackage

public final class DataDirectoryLock {
    private var fd: FileDescriptor?
    public let path: String

    private init(fd: FileDescriptor, path: String) {
        self.fd = fd
        self.path = path
    }

    public static func acquire(directory: String) throws -> DataDirectoryLock {
        try DurableLog.makeDirectory(directory)
        let path = directory + "/LOCK"
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(path, .readWrite, options: [.create, .closeOnExec],
                                         permissions: [.ownerReadWrite, .groupRead, .otherRead])
        } catch {
            throw StorageError("cannot open lock file", path, error)
        }
        guard flock(fd.rawValue, LOCK_EX | LOCK_NB) == 0 else {
            let busy = errno == EWOULDBLOCK
            let err = StorageError.errno("cannot lock", path)
            try? fd.close()
            if busy {
                let owner = (FileManager.default.contents(atPath: path))
                    .map { String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) } ?? "?"
                throw StorageError("data_dir \(directory) is in use by another meshqd (pid \(owner.isEmpty ? "?" : owner))")
            }
            throw err
        }
        _ = ftruncate(fd.rawValue, 0)
        _ = try? fd.writeAll(toAbsoluteOffset: 0, Array("\(getpid())\n".utf8))
        return DataDirectoryLock(fd: fd, path: path)
    }

    public func release() {
        if let fd {
            flock(fd.rawValue, LOCK_UN)
            try? fd.close()
        }
        fd = nil
    }

    deinit { release() }
}
