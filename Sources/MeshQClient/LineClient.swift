// LineClient: a blocking, line-oriented TCP client with timeouts, for the CLI
// and the tests (the daemon itself never blocks). Every wait goes through
// poll(2) with a deadline, so a dead server fails a call instead of hanging it.
// It lives outside Reactor (the daemon's non-blocking loop) and borrows only
// its address resolution. With a TLSContext the same lines travel inside TLS
// (OpenSSL through BlockingTLS), the server's certificate checked against the
// context's CA and for the host name or address dialled.
import Glibc
import Reactor

public final class LineClient {
    private var fd: Int32
    private var inbox: [UInt8] = []
    private var inboxStart = 0
    private var tls: BlockingTLS?
    public let address: SocketAddress
    public var timeoutMs: Int

    public init(host: String, port: UInt16, timeoutMs: Int = 5_000, tls: TLSContext? = nil) throws(ReactorError) {
        address = try SocketAddress.resolve(host: host, port: port)
        self.timeoutMs = timeoutMs
        let family = address.withSockaddr { sa, _ in Int32(sa.pointee.sa_family) }
        fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw ReactorError.errno("socket") }
        let rc = address.withSockaddr { sa, len in Glibc.connect(fd, sa, socklen_t(len)) }
        if rc != 0 {
            guard errno == EINPROGRESS else {
                let e = ReactorError.errno("connect \(address)")
                close()
                throw e
            }
            guard wait(for: Int16(POLLOUT), timeoutMs: timeoutMs) else {
                close()
                throw ReactorError("connect \(address): timed out after \(timeoutMs) ms")
            }
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
            if err != 0 {
                close()
                throw ReactorError("connect \(address): \(String(cString: strerror(err)))")
            }
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        if let tls {
            do {
                self.tls = try BlockingTLS(context: tls, fd: fd, serverName: host, timeoutMs: timeoutMs)
            } catch {
                close()
                throw ReactorError("\(address): \(error)")
            }
        }
    }

    deinit { close() }

    public func close() {
        tls?.shutdown()
        tls = nil
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    private func wait(for events: Int16, timeoutMs: Int) -> Bool {
        var p = pollfd(fd: fd, events: events, revents: 0)
        while true {
            let rc = poll(&p, 1, Int32(timeoutMs))
            if rc < 0 && errno == EINTR { continue }
            return rc > 0
        }
    }

    public func send(_ text: String) throws(ReactorError) {
        try send(bytes: Array(text.utf8))
    }

    public func send(bytes: [UInt8]) throws(ReactorError) {
        if let tls {
            try tls.write(bytes, timeoutMs: timeoutMs)
            return
        }
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress! + off, raw.count - off, Int32(MSG_NOSIGNAL))
            }
            if n > 0 {
                off += n
            } else if n < 0 && (errno == EAGAIN || errno == EINTR) {
                guard wait(for: Int16(POLLOUT), timeoutMs: timeoutMs) else {
                    throw ReactorError("send to \(address): timed out")
                }
            } else {
                throw ReactorError.errno("send to \(address)")
            }
        }
    }

    /// The next line, without its "\n". Throws on timeout or when the server closes.
    public func readLine(timeoutMs: Int? = nil) throws(ReactorError) -> String {
        while true {
            if let nl = inbox[inboxStart...].firstIndex(of: 0x0A) {
                let line = String(decoding: inbox[inboxStart..<nl], as: UTF8.self)
                inboxStart = nl + 1
                if inboxStart == inbox.count {
                    inbox.removeAll(keepingCapacity: true)
                    inboxStart = 0
                }
                return line
            }
            try fill(timeoutMs: timeoutMs ?? self.timeoutMs)
        }
    }

    /// Reads until the server closes the connection; returns what came.
    public func readToEnd(timeoutMs: Int? = nil) throws(ReactorError) -> String {
        while true {
            do {
                try fill(timeoutMs: timeoutMs ?? self.timeoutMs)
            } catch {
                if error.description.hasSuffix("closed the connection") { break }
                throw error
            }
        }
        let s = String(decoding: inbox[inboxStart...], as: UTF8.self)
        inbox.removeAll()
        inboxStart = 0
        return s
    }

    private func fill(timeoutMs: Int) throws(ReactorError) {
        if let tls {
            // OpenSSL may hold decrypted bytes already: read first, it polls when it must.
            guard try tls.read(into: &inbox, timeoutMs: timeoutMs) else {
                throw ReactorError("\(address) closed the connection")
            }
            return
        }
        guard wait(for: Int16(POLLIN), timeoutMs: timeoutMs) else {
            throw ReactorError("read from \(address): timed out after \(timeoutMs) ms")
        }
        var chunk = [UInt8](repeating: 0, count: 65_536)
        let n = chunk.withUnsafeMutableBytes { raw in recv(fd, raw.baseAddress!, raw.count, 0) }
        if n > 0 {
            inbox.append(contentsOf: chunk[0..<n])
        } else if n == 0 {
            throw ReactorError("\(address) closed the connection")
        } else if errno != EAGAIN && errno != EINTR {
            throw ReactorError.errno("read from \(address)")
        }
    }

    /// Half-closes: no more bytes from us (as `nc -q` does); replies still
    /// come. Over TLS this is a TCP FIN without close_notify, which the
    /// server takes as the end of input too.
    public func shutdownWrite() {
        if fd >= 0 { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }
    }

    /// Sends one command line and returns its one reply line.
    public func request(_ line: String) throws(ReactorError) -> String {
        try send(line + "\n")
        return try readLine()
    }
}
