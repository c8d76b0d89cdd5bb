// StorageError: a failed file operation. Its message always names the path and
// the OS's reason, because the operator reading a journal line has nothing else.
// The errno text comes from SystemPackage's Errno, which keeps strerror's
// pointer out of this module.
import Foundation
import Glibc
import SystemPackage

public struct StorageError: Error, CustomStringConvertible, Sendable {
    public let description: String

    public init(_ message: String) { description = message }

    init(_ what: String, _ path: String, _ error: any Error) {
        description = "\(what) \(path): \(StorageError.reason(error))"
    }

    /// For Glibc calls that report through errno; read it before anything else can overwrite it.
    static func errno(_ what: String, _ path: String) -> StorageError {
        StorageError("\(what) \(path): \(Errno(rawValue: Glibc.errno).description)")
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
}
