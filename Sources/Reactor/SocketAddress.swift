// SocketAddress: a resolved IPv4/IPv6 address kept as sockaddr bytes, so the
// rest of the program never handles sockaddr structures. Resolution is blocking
// (getaddrinfo) and done at start-up or reconnect, never per message.
import CLibevent
import Glibc

public struct SocketAddress: Sendable, CustomStringConvertible {
    let storage: [UInt8]
    public let host: String
    public let port: UInt16

    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Resolves `host` (a name, an IPv4 or an IPv6 literal) for TCP.
    public static func resolve(host: String, port: UInt16) throws(ReactorError) -> SocketAddress {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &result)
        guard rc == 0, let first = result else {
            // AI_ADDRCONFIG hides ::1 and 127.0.0.1 on hosts without a configured
            // address of that family (containers); retry without it.
            hints.ai_flags = AI_NUMERICSERV
            let rc2 = getaddrinfo(host, String(port), &hints, &result)
            guard rc2 == 0, let first = result else {
                throw ReactorError("cannot resolve \(host): \(String(cString: gai_strerror(rc2)))")
            }
            defer { freeaddrinfo(result) }
            return SocketAddress(first.pointee, host: host, port: port)
        }
        defer { freeaddrinfo(result) }
        return SocketAddress(first.pointee, host: host, port: port)
    }

    private init(_ ai: addrinfo, host: String, port: UInt16) {
        let len = Int(ai.ai_addrlen)
        storage = [UInt8](UnsafeRawBufferPointer(start: ai.ai_addr, count: len))
        self.host = host
        self.port = port
    }

    /// The address as a `sockaddr` and its length, for a system call.
    public func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, Int32) -> R) -> R {
        storage.withUnsafeBytes { raw in
            body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), Int32(raw.count))
        }
    }
}

public struct ReactorError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ message: String) { description = message }

    /// `what` followed by the text of the current errno.
    public static func errno(_ what: String) -> ReactorError {
        ReactorError("\(what): \(String(cString: strerror(Glibc.errno)))")
    }
}
