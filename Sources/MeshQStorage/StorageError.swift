// StorageError: a failed file operation. Its message always names the path and
// the OS's reason, because the operator reading a journal line has nothing else.
// The errno text comes from SystemPackage's Errno, which keeps strerror's
// pointer out of this module. When the OS gave an errno it is kept as a number
// too, with the operation, so the daemon can tell a full disk (ENOSPC) from a
// failing one (EIO and everything else) without parsing text.
import Foundation
import Glibc
import SystemPackage

public struct StorageError: Error, CustomStringConvertible, Sendable {
    public let description: String
    /// The OS's error number, when the failure came from a system call.
    public let errno: Int32?
    /// The system call or step that failed ("write", "fdatasync", "fsync", "rename", ...).
    public let op: String?
    public let path: String?
    /// True only when nothing of the failed call reached the file and the
    /// store is still usable: a write refused for lack of space and rolled
    /// back. Every other failure is final for the process (fsyncgate).
    public let recoverable: Bool

    public init(_ message: String) {
        description = message
        errno = nil
        op = nil
        path = nil
        recoverable = false
    }

    init(_ what: String, _ path: String, _ error: any Error, op: String? = nil) {
        description = "\(what) \(path): \(StorageError.reason(error))"
        errno = StorageError.code(error)
        self.op = op
        self.path = path
        recoverable = false
    }

    init(description: String, errno: Int32?, op: String?, path: String?, recoverable: Bool) {
        self.description = description
        self.errno = errno
        self.op = op
        self.path = path
        self.recoverable = recoverable
    }

    /// For Glibc calls that report through errno; read it before anything else can overwrite it.
    static func errno(_ what: String, _ path: String, op: String? = nil) -> StorageError {
        let code = Glibc.errno
        return StorageError(description: "\(what) \(path): \(Errno(rawValue: code).description)",
                            errno: code, op: op, path: path, recoverable: false)
    }

    /// The same failure, marked as rolled back (nothing reached the disk).
    func rolledBack() -> StorageError {
        StorageError(description: description, errno: errno, op: op, path: path, recoverable: true)
    }

    /// No space left (ENOSPC, or EDQUOT for a quota): the disk is fine, it is full.
    public var isDiskFull: Bool { errno == ENOSPC || errno == EDQUOT }

    /// The errno's symbolic name (EIO, ENOSPC, ...) for a log field; the number if unknown.
    public var errnoName: String? {
        guard let e = errno else { return nil }
        let names: [Int32: String] = [EIO: "EIO", ENOSPC: "ENOSPC", EDQUOT: "EDQUOT", EROFS: "EROFS", EBADF: "EBADF",
                                      EACCES: "EACCES", EPERM: "EPERM", ENOENT: "ENOENT", EINVAL: "EINVAL",
                                      EFBIG: "EFBIG", ENOTDIR: "ENOTDIR", EISDIR: "EISDIR", EEXIST: "EEXIST"]
        return names[e] ?? "\(e)"
    }

    /// Foundation wraps the errno in a CocoaError; unwrap it so every message reads the same.
    static func reason(_ error: any Error) -> String {
        if let e = error as? Errno { return e.description }
        if let e = error as? StorageError { return e.description }
        if let e = error as? CocoaError, let posix = e.underlying as? POSIXError {
            return Errno(rawValue: posix.code.rawValue).description
        }
        if let e = error as? POSIXError { return Errno(rawValue: e.code.rawValue).description }
        return error.localizedDescription
    }

    static func code(_ error: any Error) -> Int32? {
        if let e = error as? Errno { return e.rawValue }
        if let e = error as? StorageError { return e.errno }
        if let e = error as? CocoaError, let posix = e.underlying as? POSIXError { return posix.code.rawValue }
        if let e = error as? POSIXError { return e.code.rawValue }
        return nil
    }
}
