// Listener: a bound, listening TCP socket. Each accepted socket becomes a
// non-blocking `Connection` with TCP_NODELAY (replies are small and pipelined;
// Nagle would add 40 ms stalls). With `tls` set, each accepted socket is a
// TLS server connection built from the context current at accept time, so
// swapping the context (a certificate reload) affects only new connections.
import CLibevent
import Glibc

public final class Listener {
    private var listener: OpaquePointer?
    private let loop: EventLoop
    private let onAccept: (Connection) -> Void
    /// Called when accept(2) fails (EMFILE, ENFILE...): the listener pauses.
    public var onError: ((String) -> Void)?
    private var pauseTimer: Timer?
    public private(set) var boundPort: UInt16 = 0
    /// Accepted connections speak TLS with this context (nil: plain TCP).
    public var tls: TLSContext?

    public init(loop: EventLoop, address: SocketAddress, backlog: Int32 = 1024, tls: TLSContext? = nil,
                onAccept: @escaping (Connection) -> Void) throws(ReactorError) {
        self.loop = loop
        self.tls = tls
        self.onAccept = onAccept
        let flags = UInt32(LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC)
        let ctx = Unmanaged.passUnretained(self).toOpaque()
        let made = address.withSockaddr { sa, len in
            evconnlistener_new_bind(loop.base, { _, fd, _, _, ctx in
                Unmanaged<Listener>.fromOpaque(ctx!).takeUnretainedValue().accepted(fd)
            }, ctx, flags, backlog, sa, len)
        }
        guard let made else { throw ReactorError.errno("cannot listen on \(address)") }
        listener = made
        evconnlistener_set_error_cb(made) { lev, ctx in
            Unmanaged<Listener>.fromOpaque(ctx!).takeUnretainedValue().acceptFailed()
        }
        boundPort = Listener.localPort(of: evconnlistener_get_fd(made))
    }

    deinit { close() }

    public func close() {
        if let listener { evconnlistener_free(listener) }
        listener = nil
        pauseTimer = nil
    }

    private func accepted(_ fd: Int32) {
        setNoDelay(fd)
        guard let conn = Connection(loop: loop, fd: fd, peer: Listener.peerName(of: fd), tls: tls) else {
            Glibc.close(fd)
            return
        }
        onAccept(conn)
    }

    // Out of descriptors: accepting again at once would spin the loop; back off
    // for 100 ms and let existing clients finish.
    private func acceptFailed() {
        let reason = String(cString: strerror(errno))
        onError?(reason)
        guard let listener else { return }
        evconnlistener_disable(listener)
        if pauseTimer == nil {
            pauseTimer = Timer(loop: loop) { [weak self] in
                if let l = self?.listener { evconnlistener_enable(l) }
            }
        }
        pauseTimer?.schedule(afterMs: 100)
    }

    /// "host:port" of the remote end, for log lines ("" if unknown).
    static func peerName(of fd: Int32) -> String {
        var ss = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &ss) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &len) }
        }
        guard rc == 0 else { return "" }
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var serv = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let ok = withUnsafePointer(to: &ss) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, len, &host, socklen_t(host.count), &serv, socklen_t(serv.count), NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        guard ok == 0 else { return "" }
        func text(_ b: [CChar]) -> String { String(decoding: b.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        let h = text(host)
        return h.contains(":") ? "[\(h)]:\(text(serv))" : "\(h):\(text(serv))"
    }

    static func localPort(of fd: Int32) -> UInt16 {
        var ss = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &ss) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        guard rc == 0 else { return 0 }
        if Int32(ss.ss_family) == AF_INET {
            return withUnsafePointer(to: &ss) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
            }
        } else {
            return withUnsafePointer(to: &ss) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
            }
        }
    }
}

func setNoDelay(_ fd: Int32) {
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
}
