// DatagramSocket: a bound AF_UNIX datagram socket that receives with a
// deadline. It is the receiving end of the sd_notify protocol, for tests and
// tools that stand in for systemd. (A test tool, so it lives with the test
// support rather than in the daemon's reactor.)
import Glibc
import Reactor

public final class DatagramSocket {
    private var fd: Int32 = -1
    public let path: String

    /// `path` is a file path, or "@name" for Linux's abstract namespace.
    public init(path: String) throws(ReactorError) {
        self.path = path
        var bytes = Array(path.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        guard bytes.count < 108 else { throw ReactorError("socket path too long: \(path)") }
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ReactorError.errno("socket") }
        if !abstract { unlink(path) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count + (abstract ? 0 : 1)))
            }
        }
        guard rc == 0 else {
            let e = ReactorError.errno("bind \(path)")
            Glibc.close(fd)
            fd = -1   // deinit runs after a throwing init: never close twice
            throw e
        }
    }

    deinit {
        if fd >= 0 { Glibc.close(fd) }
        if !path.hasPrefix("@") { unlink(path) }
    }

    /// The next datagram as text, or nil when none arrives within `timeoutMs`.
    public func receive(timeoutMs: Int) -> String? {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, Int32(timeoutMs)) > 0 else { return nil }
        var buf = [UInt8](repeating: 0, count: 4_096)
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
        guard n >= 0 else { return nil }
        return String(decoding: buf[0..<n], as: UTF8.self)
    }
}
