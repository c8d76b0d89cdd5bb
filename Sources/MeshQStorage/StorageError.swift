// StorageError: a failed file operation, naming the path and the OS's reason.
import Glibc
import SystemPackage

public struct StorageError: Error, CustomStringConvertible, Sendable {
    public let description: String

    public init(_ message: String) { description = message }

    init(_ what: String, _ path: String, _ error: any Error) {
        if let e = error as? Errno {
            description = "\(what) \(path): \(String(cString: strerror(e.rawValue)))"
        } else {
            description = "\(what) \(path): \(error)"
        }
    }

    static func errno(_ what: String, _ path: String) -> StorageError {
        StorageError("\(what) \(path): \(String(cString: strerror(Glibc.errno)))")
    }
}
