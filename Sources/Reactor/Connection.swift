// Connection: one TCP stream over a libevent bufferevent. Reads are drained
// into a caller-owned Swift array, and then, on a plain socket, continue
// straight from the socket up to `readLimit` per readable event: libevent 2.1
// reads at most 4 KiB per event (EVBUFFER_MAX_READ), so a 4 MiB replication
// frame cost a thousand loop passes of epoll_wait, ioctl and readv.
// Writes on a plain connected socket are staged in the connection and leave
// with one send(2) straight to the socket when the loop's iteration ends
// (`flushNow`, or the loop's own end-of-iteration flush), however many were
// staged, as Redis writes its replies before it sleeps; only what the
// kernel does not take goes to the bufferevent, which then watches the
// socket for writability. (Handing every write to the bufferevent cost two
// epoll_ctl calls and a wakeup per message: one to watch for writability,
// one when its callback found the bytes already gone.) TLS connections, and
// any write while the bufferevent still holds bytes, go through libevent.
// An open Connection keeps itself alive (a retained
// context pointer) until it closes, so callers may drop it inside callbacks;
// the retain is released exactly once, in `close`.
//
// A TLS connection is the same object over libevent's OpenSSL bufferevent
// (bufferevent_openssl_socket_new): callers see plaintext reads and writes,
// `onConnect` fires once the handshake is done, and a failed handshake or a
// bad record closes with `.tls(reason)` (OpenSSL's reason, with the
// certificate verification error when that is what failed).
import CLibevent
import Glibc

public final class Connection {
    public enum CloseReason: Sendable, CustomStringConvertible {
        case local, eof, error(String), timeout
        /// The TLS handshake or a TLS record failed.
        case tls(String)
        public var description: String {
            switch self {
            case .local: return "closed"
            case .eof: return "eof"
            case .error(let e): return e
            case .timeout: return "timeout"
            case .tls(let e): return "tls: \(e)"
            }
        }
    }

    private var bev: OpaquePointer?
    private unowned let loop: EventLoop
    /// A read error met while reading the socket directly, reported when
    /// libevent then sees the end of the stream.
    private var readError: Int32 = 0
    private var retained: Unmanaged<Connection>?
    private var closeWhenFlushed = false
    /// Written but not yet sent (plain sockets; see the file comment).
    /// Invariant: non-empty only while the bufferevent's output is empty.
    private var staged: [UInt8] = []
    /// In the loop's list of connections to flush at the iteration's end.
    private var awaitingFlush = false
    /// A plain socket whose connect completed (accepted ones always).
    private var connected: Bool
    private var connectTimer: Timer?
    private var onConnect: ((Connection?, String?) -> Void)?

    /// New bytes are waiting: call `read(into:)`.
    public var onReadable: ((Connection) -> Void)?
    /// The output buffer has been fully written to the socket.
    public var onDrained: ((Connection) -> Void)?
    /// The peer shut down its sending side (a half-close, as `nc -q` or
    /// `shutdown(SHUT_WR)` do). With this set the connection stays open for
    /// writing, so replies to what was already received still go out; without
    /// it, end of input closes the connection.
    public var onEndOfInput: ((Connection) -> Void)?
    /// Called once when the connection ends, whichever side ended it.
    public var onClose: ((Connection, CloseReason) -> Void)?

    public private(set) var isOpen = false
    public let peerDescription: String
    /// Whether the bytes travel inside TLS.
    public let isTLS: Bool
    /// TLS: the handshake has completed (plain connections: always true).
    public private(set) var isHandshakeDone: Bool

    init?(loop: EventLoop, fd: Int32, peer: String = "", tls: TLSContext? = nil) {
        peerDescription = peer
        isTLS = tls != nil
        isHandshakeDone = tls == nil
        connected = true
        self.loop = loop
        guard let b = Connection.makeBufferevent(loop: loop, fd: fd, tls: tls, connecting: false, host: nil) else {
            return nil
        }
        bev = b
        open()
        bufferevent_enable(b, Int16(meshq_ev_read() | meshq_ev_write()))
    }

    private init?(loop: EventLoop, connectingTo address: SocketAddress, tls: TLSContext?, serverName: String?) {
        peerDescription = address.description
        isTLS = tls != nil
        isHandshakeDone = tls == nil
        connected = false
        self.loop = loop
        guard let b = Connection.makeBufferevent(loop: loop, fd: -1, tls: tls, connecting: true, host: serverName) else {
            return nil
        }
        bev = b
        open()
    }

    private static func makeBufferevent(loop: EventLoop, fd: Int32, tls: TLSContext?, connecting: Bool,
                                        host: String?) -> OpaquePointer? {
        let opts = Int32(BEV_OPT_CLOSE_ON_FREE.rawValue)
        guard let tls else { return bufferevent_socket_new(loop.base, fd, opts) }
        guard let ssl = tls.makeSSL(expectedHost: host) else { return nil }
        let state = connecting ? BUFFEREVENT_SSL_CONNECTING : BUFFEREVENT_SSL_ACCEPTING
        guard let b = bufferevent_openssl_socket_new(loop.base, fd, ssl, state, opts) else {
            SSL_free(ssl)
            return nil
        }
        // A peer that closes TCP without close_notify ends the stream (EOF),
        // as it would on a plain socket, instead of raising an error.
        bufferevent_openssl_set_allow_dirty_shutdown(b, 1)
        return b
    }

    private func open() {
        retained = Unmanaged.passRetained(self)
        isOpen = true
        bufferevent_setcb(bev, { _, ctx in
            let me = Unmanaged<Connection>.fromOpaque(ctx!).takeUnretainedValue()
            withExtendedLifetime(me) { me.readable() }
        }, { _, ctx in
            let me = Unmanaged<Connection>.fromOpaque(ctx!).takeUnretainedValue()
            withExtendedLifetime(me) { me.drained() }
        }, { _, what, ctx in
            let me = Unmanaged<Connection>.fromOpaque(ctx!).takeUnretainedValue()
            withExtendedLifetime(me) { me.event(what) }
        }, retained!.toOpaque())
    }

    /// Opens a TCP connection. A connect that hangs (a cut cable drops SYNs)
    /// fails after `timeoutMs` without ever blocking the loop.
    /// With `tls`, the completion runs after the TLS handshake (and
    /// certificate checks) succeeded, or with the reason it failed;
    /// `serverName` checks that the server's certificate names that host.
    public static func connect(loop: EventLoop, to address: SocketAddress, timeoutMs: Int,
                               tls: TLSContext? = nil, serverName: String? = nil,
                               completion: @escaping (Connection?, String?) -> Void) {
        guard let conn = Connection(loop: loop, connectingTo: address, tls: tls, serverName: serverName) else {
            completion(nil, "cannot create a socket")
            return
        }
        conn.onConnect = completion
        let rc = address.withSockaddr { sa, len in bufferevent_socket_connect(conn.bev, sa, len) }
        if rc != 0 {
            conn.failConnect(String(cString: strerror(errno)))
            return
        }
        conn.connectTimer = Timer(loop: loop) { [weak conn] in
            conn?.failConnect("connect timed out after \(timeoutMs) ms")
        }
        conn.connectTimer?.schedule(afterMs: timeoutMs)
    }

    private func failConnect(_ reason: String) {
        let cb = onConnect
        onConnect = nil
        connectTimer = nil
        teardown()
        cb?(nil, reason)
    }

    private func readable() { onReadable?(self) }

    private func drained() {
        // libevent reports its own buffer empty; bytes staged here are not
        // sent yet (its write callback also runs once the socket is
        // writable with nothing queued).
        guard staged.isEmpty else { return }
        if closeWhenFlushed {
            close()
            return
        }
        onDrained?(self)
    }

    private func event(_ what: Int16) {
        let w = Int32(what)
        if w & Int32(BEV_EVENT_CONNECTED) != 0 {
            isHandshakeDone = true
            connected = true
            connectTimer = nil
            if let fd = bev.map({ bufferevent_getfd($0) }) { setNoDelay(fd) }
            bufferevent_enable(bev, Int16(meshq_ev_read() | meshq_ev_write()))
            let cb = onConnect
            onConnect = nil
            cb?(self, nil)
            return
        }
        if onConnect != nil {
            let err = errno
            if let why = tlsFailure() {
                failConnect("tls: \(why)")
            } else {
                failConnect(w & Int32(BEV_EVENT_ERROR) != 0 ? String(cString: strerror(err)) : "connection refused")
            }
            return
        }
        if w & Int32(BEV_EVENT_EOF) != 0, w & Int32(BEV_EVENT_READING) != 0, let eoi = onEndOfInput {
            pauseReading()
            onEndOfInput = nil
            eoi(self)
            return
        }
        let reason: CloseReason
        let err = errno
        if let why = tlsFailure() {
            reason = .tls(why)
        } else if isTLS && !isHandshakeDone {
            reason = .tls("closed during the handshake")
        } else if w & Int32(BEV_EVENT_EOF) != 0 {
            reason = readError == 0 ? .eof : .error(String(cString: strerror(readError)))
        } else if w & Int32(BEV_EVENT_TIMEOUT) != 0 {
            reason = .timeout
        } else {
            reason = .error(err == 0 ? "socket error" : String(cString: strerror(err)))
        }
        finish(reason)
    }

    /// OpenSSL's errors for this connection (drained), with the certificate
    /// verification result when it failed; nil when TLS reported nothing.
    private func tlsFailure() -> String? {
        guard isTLS, let bev else { return nil }
        var parts: [String] = []
        while true {
            let e = bufferevent_get_openssl_error(bev)
            if e == 0 { break }
            // libevent also queues SSL_get_error() codes (library 0): a
            // socket error (SSL_ERROR_SYSCALL) or a clean close is not a TLS failure.
            if TLSContext.isLibraryError(e) { parts.append(TLSContext.describe(e)) }
        }
        if let ssl = bufferevent_openssl_get_ssl(bev), !isHandshakeDone, let why = TLSContext.verifyFailure(ssl),
           !parts.isEmpty {
            parts.append(why)
        }
        return parts.isEmpty ? nil : parts.joined(separator: ": ")
    }

    /// A backstop for links that go silent without a reset: the kernel
    /// probes an idle connection (keepalive) and drops one whose sent data
    /// stays unacknowledged for `userTimeoutMs` (TCP_USER_TIMEOUT), which
    /// then closes like any failed connection.
    public func setLivenessTimeouts(userTimeoutMs: Int) {
        guard let bev else { return }
        let fd = bufferevent_getfd(bev)
        guard fd >= 0 else { return }
        func set(_ level: Int32, _ name: Int32, _ value: Int32) {
            var v = value
            setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size))
        }
        let secs = Int32(max(1, userTimeoutMs / 1000))
        set(SOL_SOCKET, SO_KEEPALIVE, 1)
        set(Int32(IPPROTO_TCP), TCP_KEEPIDLE, secs)
        set(Int32(IPPROTO_TCP), TCP_KEEPINTVL, secs)
        set(Int32(IPPROTO_TCP), TCP_KEEPCNT, 3)
        set(Int32(IPPROTO_TCP), TCP_USER_TIMEOUT, Int32(clamping: userTimeoutMs))
    }

    /// The most one readable event takes from a plain socket: enough for a
    /// replication batch in a few passes, small enough that one busy
    /// connection does not hold up the others for long.
    public static let readLimit = 1 << 20
    /// What libevent 2.1 reads per event at most: a read that came short
    /// of it emptied the socket, so reading on would only cost a recv(2)
    /// that finds nothing (for a client's few pipelined commands, that is
    /// every read).
    static let libeventReadChunk = 4096

    /// Appends every byte received so far to `buffer`, then (plain sockets)
    /// what the socket holds, up to `readLimit`; returns how many.
    @discardableResult
    public func read(into buffer: inout [UInt8]) -> Int {
        guard let bev else { return 0 }
        let input = bufferevent_get_input(bev)
        let n = evbuffer_get_length(input)
        var got = 0
        if n > 0 {
            // Into a fresh array, then one contiguous append: no per-byte generic
            // code (it made debug builds move about 1 MB/s).
            let chunk = [UInt8](unsafeUninitializedCapacity: n) { raw, count in
                got = max(0, Int(evbuffer_remove(input, raw.baseAddress!, n)))
                count = got
            }
            buffer.append(contentsOf: chunk)
        }
        if !isTLS && n >= Connection.libeventReadChunk { got += readSocket(into: &buffer, limit: Connection.readLimit - got) }
        return got
    }

    /// Reads the socket until it is empty or `limit` bytes came. The end of
    /// the stream and errors are left to libevent, which sees them on its
    /// next read (an error is kept, since the socket reports it only once).
    private func readSocket(into buffer: inout [UInt8], limit: Int) -> Int {
        guard let bev, readError == 0 else { return 0 }
        let fd = bufferevent_getfd(bev)
        guard fd >= 0 else { return 0 }
        let scratch = loop.readScratch
        var total = 0
        while total < limit {
            let want = min(scratch.count, limit - total)
            let r = recv(fd, scratch.baseAddress!, want, 0)
            if r < 0 {
                if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR { readError = errno }
                break
            }
            if r == 0 { break }
            buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: scratch[0..<r]))
            total += r
            if r < want { break }
        }
        return total
    }

    public func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { write($0) }
    }

    public func write(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { write($0) }
    }

    public func write(_ text: String) {
        var text = text
        text.withUTF8 { write(UnsafeRawBufferPointer($0)) }
    }

    private func write(_ raw: UnsafeRawBufferPointer) {
        guard let bev, raw.count > 0 else { return }
        guard !isTLS, connected, evbuffer_get_length(bufferevent_get_output(bev)) == 0 else {
            _ = bufferevent_write(bev, raw.baseAddress!, raw.count)
            return
        }
        staged.append(contentsOf: raw)
        if !awaitingFlush {
            awaitingFlush = true
            loop.flushAtIterationEnd(self)
        }
    }

    /// Hands queued output to the kernel now rather than on the next loop
    /// iteration: before a blocking fsync, so the peer's work overlaps ours,
    /// and at the end of each iteration, so replies leave before the loop
    /// sleeps (as Redis writes its clients' replies before sleeping).
    /// Whatever the socket does not take stays queued for the loop.
    /// TLS connections leave it to the loop (the bytes must be encrypted first).
    public func flushNow() {
        awaitingFlush = false
        guard !isTLS, let bev else { return }
        let fd = bufferevent_getfd(bev)
        guard fd >= 0 else { return }
        let output = bufferevent_get_output(bev)
        if !staged.isEmpty {
            // Straight to the socket; the rest (or all, if it fails: libevent
            // then meets the error itself and reports it) to the bufferevent.
            let sent = max(0, staged.withUnsafeBytes { send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) })
            if sent < staged.count {
                staged[sent...].withUnsafeBytes { _ = bufferevent_write(bev, $0.baseAddress!, $0.count) }
            }
            staged.removeAll(keepingCapacity: staged.capacity <= 1 << 20)
            if sent > 0 && evbuffer_get_length(output) == 0 {
                drained()
                return
            }
        }
        guard evbuffer_get_length(output) > 0 else { return }
        // A socket bufferevent keeps its output frozen at the front (only its
        // own write callback drains it, unfreezing around the write): a
        // plain evbuffer_write fails with -1 and writes nothing. Do as that
        // callback does. Nothing else drains this buffer meanwhile (one thread).
        evbuffer_unfreeze(output, 1)
        let wrote = evbuffer_write(output, fd)
        evbuffer_freeze(output, 1)
        // Emptied here, the bufferevent's write callback finds nothing to
        // write and stays silent: say so as it would have.
        if wrote > 0 && evbuffer_get_length(output) == 0 { drained() }
    }

    /// Bytes queued but not yet accepted by the kernel.
    public var pendingOutputBytes: Int {
        guard let bev else { return 0 }
        return staged.count + evbuffer_get_length(bufferevent_get_output(bev))
    }

    /// Stops reading (backpressure for a client that does not read its replies).
    public func pauseReading() {
        if let bev { bufferevent_disable(bev, Int16(meshq_ev_read())) }
    }

    public func resumeReading() {
        if let bev { bufferevent_enable(bev, Int16(meshq_ev_read())) }
    }

    /// Closes once everything written so far has left; reads nothing more.
    public func closeAfterFlush() {
        guard isOpen else { return }
        pauseReading()
        if pendingOutputBytes == 0 {
            close()
        } else {
            closeWhenFlushed = true
        }
    }

    /// Closes at once; `onClose` is called with `.local`.
    public func close() {
        if isOpen, isTLS, isHandshakeDone, let bev, let ssl = bufferevent_openssl_get_ssl(bev) {
            // close_notify, best effort: the socket is non-blocking.
            _ = SSL_shutdown(ssl)
        }
        finish(.local)
    }

    private func finish(_ reason: CloseReason) {
        guard isOpen else { return }
        let cb = onClose
        teardown()
        cb?(self, reason)
    }

    private func teardown() {
        guard isOpen else { return }
        isOpen = false
        if let bev {
            bufferevent_setcb(bev, nil, nil, nil, nil)
            bufferevent_free(bev)
        }
        bev = nil
        staged = []
        onReadable = nil
        onDrained = nil
        onEndOfInput = nil
        onClose = nil
        connectTimer = nil
        // The C callbacks hold `self` with withExtendedLifetime, so this may
        // drop the last reference while one of them is still running.
        let r = retained
        retained = nil
        r?.release()
    }
}
