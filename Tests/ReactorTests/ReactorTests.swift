// The libevent wrapper on a real loop: backend, timers, deferred events,
// signals, and a TCP round trip through Listener and Connection.
import Dispatch
import Foundation
import Glibc
@testable import Reactor
import Testing

@Suite(.serialized) struct ReactorTests {
    @Test func backendIsEpoll() {
        #expect(EventLoop().method == "epoll")
    }

    @Test func timersFireInDeadlineOrderAndCancelledOnesDoNot() {
        let loop = EventLoop()
        var fired: [String] = []
        let late = Timer(loop: loop) { fired.append("late"); loop.stop() }
        let early = Timer(loop: loop) { fired.append("early") }
        let cancelled = Timer(loop: loop) { fired.append("cancelled") }
        late.schedule(afterMs: 60)
        early.schedule(afterMs: 10)
        cancelled.schedule(afterMs: 20)
        cancelled.cancel()
        #expect(!cancelled.isScheduled)
        loop.run()
        #expect(fired == ["early", "late"])
    }

    @Test func repeatingTimerRepeats() {
        let loop = EventLoop()
        var n = 0
        let t = Timer(loop: loop, repeating: true) {
            n += 1
            if n == 3 { loop.stop() }
        }
        t.schedule(afterMs: 5)
        loop.run()
        t.cancel()
        #expect(n == 3)
    }

    @Test func deferredEventRunsOnceAfterTheIterationsOtherEvents() {
        let loop = EventLoop()
        var order: [String] = []
        var deferred: DeferredEvent!
        deferred = DeferredEvent(loop: loop) { order.append("deferred"); loop.stop() }
        let a = Timer(loop: loop) { order.append("a"); deferred.activate() }
        let b = Timer(loop: loop) { order.append("b"); deferred.activate() }
        a.schedule(afterMs: 0)
        b.schedule(afterMs: 0)
        loop.run()
        #expect(order == ["a", "b", "deferred"])
    }

    @Test func signalsArriveAsLoopCallbacks() {
        let loop = EventLoop()
        var got = false
        let w = SignalWatcher(loop: loop, signal: SIGUSR1) { got = true; loop.stop() }
        let t = Timer(loop: loop) { kill(getpid(), SIGUSR1) }
        t.schedule(afterMs: 1)
        loop.run()
        withExtendedLifetime(w) {}
        #expect(got)
    }

    @Test func tcpRoundTripWithPipelinedLines() throws {
        let loop = EventLoop()
        var serverSide: [Connection] = []
        // An echo server: every byte back, uppercased.
        let listener = try Listener(loop: loop, address: SocketAddress.resolve(host: "127.0.0.1", port: 0)) { conn in
            serverSide.append(conn)
            var buf: [UInt8] = []
            conn.onReadable = { c in
                buf.removeAll()
                c.read(into: &buf)
                c.write(buf.map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0 })
            }
        }
        var received: [UInt8] = []
        var closedWith: Connection.CloseReason?
        Connection.connect(loop: loop, to: try SocketAddress.resolve(host: "127.0.0.1", port: listener.boundPort),
                           timeoutMs: 2_000) { conn, error in
            guard let conn else {
                Issue.record("connect failed: \(error ?? "?")")
                loop.stop()
                return
            }
            conn.onReadable = { c in
                c.read(into: &received)
                if received.count >= 12 { serverSide.first?.close() }
            }
            conn.onClose = { _, reason in closedWith = reason; loop.stop() }
            conn.write("ping\npong\n")
            conn.write(Array("xy\n".utf8))
        }
        let guardTimer = Timer(loop: loop) { loop.stop() }
        guardTimer.schedule(afterMs: 10_000)
        loop.run()
        #expect(String(decoding: received, as: UTF8.self) == "PING\nPONG\nXY\n")
        if case .eof? = closedWith {} else { Issue.record("expected eof, got \(String(describing: closedWith))") }
    }

    @Test func connectToAClosedPortFailsWithoutBlocking() throws {
        let loop = EventLoop()
        // A port that was free a moment ago: connection refused.
        let l = try Listener(loop: loop, address: SocketAddress.resolve(host: "127.0.0.1", port: 0)) { _ in }
        let port = l.boundPort
        l.close()
        var result: String?
        Connection.connect(loop: loop, to: try SocketAddress.resolve(host: "127.0.0.1", port: port), timeoutMs: 2_000) { c, e in
            result = c == nil ? (e ?? "failed") : "connected"
            loop.stop()
        }
        let guardTimer = Timer(loop: loop) { loop.stop() }
        guardTimer.schedule(afterMs: 10_000)
        loop.run()
        #expect(result != nil && result != "connected")
    }

    /// A blocking client on its own thread: connects and sends `bytes`. It
    /// then waits for `go` (when given) and ends its side with a FIN, or
    /// with a reset (SO_LINGER 0) when `reset`; it signals `sent` once all
    /// of that is in the kernel's hands.
    private static func sendFromThread(port: Int, bytes: [UInt8], reset: Bool, go: DispatchSemaphore? = nil,
                                       sent: DispatchSemaphore) {
        Thread {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var big: Int32 = 8 << 20
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, socklen_t(MemoryLayout<Int32>.size))
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = in_port_t(UInt16(port).bigEndian)
            sin.sin_addr.s_addr = inet_addr("127.0.0.1")
            let rc = withUnsafePointer(to: &sin) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if rc == 0 {
                var off = 0
                while off < bytes.count {
                    let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + off, bytes.count - off, 0) }
                    if n <= 0 { break }
                    off += n
                }
            }
            if let go { _ = go.wait(timeout: .now() + 30) }
            if reset {
                var l = linger(l_onoff: 1, l_linger: 0)
                setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
                close(fd)
            } else {
                shutdown(fd, Int32(SHUT_WR))
            }
            sent.signal()
            if !reset {
                // Open until the server is done reading (it closes first).
                var b = [UInt8](repeating: 0, count: 64)
                while recv(fd, &b, 64, 0) > 0 {}
                close(fd)
            }
        }.start()
    }

    /// libevent 2.1 reads 4 KiB per readable event; a plain connection reads
    /// on from the socket, so a large stream arrives in large reads, intact,
    /// and still ends with EOF.
    @Test func aLargeStreamArrivesInLargeReadsAndEndsWithEOF() throws {
        let loop = EventLoop()
        let size = 1 << 20
        let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 11) }
        let sent = DispatchSemaphore(value: 0)
        var received: [UInt8] = []
        var largestRead = 0
        var waited = false
        var closedWith: Connection.CloseReason?
        var server: Connection?
        let listener = try Listener(loop: loop, address: SocketAddress.resolve(host: "127.0.0.1", port: 0)) { conn in
            server = conn
            conn.onReadable = { c in
                // Let the whole stream reach the kernel before the first read.
                if !waited { waited = true; _ = sent.wait(timeout: .now() + 30) }
                largestRead = max(largestRead, c.read(into: &received))
            }
            conn.onClose = { _, reason in closedWith = reason; loop.stop() }
        }
        ReactorTests.sendFromThread(port: Int(listener.boundPort), bytes: payload, reset: false, sent: sent)
        let guardTimer = Timer(loop: loop) { loop.stop() }
        guardTimer.schedule(afterMs: 30_000)
        loop.run()
        server?.close()
        #expect(received == payload)
        #expect(largestRead > 16 << 10, "largest single read: \(largestRead) bytes")
        if case .eof? = closedWith {} else { Issue.record("expected eof, got \(String(describing: closedWith))") }
    }

    /// A reset met while reading the socket directly is reported as the
    /// error it was, not as a clean end of the stream: libevent's own read
    /// took the first 4 KiB, and the reset arrives before ours.
    @Test func aResetMetByADirectReadIsReportedAsAnError() throws {
        let loop = EventLoop()
        let go = DispatchSemaphore(value: 0)
        let sent = DispatchSemaphore(value: 0)
        var waited = false
        var closedWith: Connection.CloseReason?
        var scratch: [UInt8] = []
        let listener = try Listener(loop: loop, address: SocketAddress.resolve(host: "127.0.0.1", port: 0)) { conn in
            conn.onReadable = { c in
                if !waited {
                    waited = true
                    go.signal()
                    _ = sent.wait(timeout: .now() + 30)
                    // Loopback delivers the reset within the sender's close;
                    // this only leaves room for a slow softirq.
                    usleep(20_000)
                }
                c.read(into: &scratch)
            }
            conn.onClose = { _, reason in closedWith = reason; loop.stop() }
        }
        ReactorTests.sendFromThread(port: Int(listener.boundPort), bytes: Array(repeating: 0x61, count: 4096),
                                    reset: true, go: go, sent: sent)
        let guardTimer = Timer(loop: loop) { loop.stop() }
        guardTimer.schedule(afterMs: 30_000)
        loop.run()
        #expect(scratch.count == 4096)
        guard case .error(let why)? = closedWith else {
            Issue.record("expected a reset error, got \(String(describing: closedWith))")
            return
        }
        #expect(why.contains("reset"), "\(why)")
    }

    /// flushNow hands queued bytes to the kernel at once, without a turn of
    /// the loop (the leader's PREPAREs leave before its own fsync).
    @Test func flushNowWritesWithoutTheLoop() throws {
        let loop = EventLoop()
        guard let (conn, peer) = connectedPair(loop) else { return }
        defer { close(peer) }
        defer { conn.close() }
        conn.write(Array("prepare\n".utf8))
        #expect(conn.pendingOutputBytes == 8)
        conn.flushNow()
        var buf = [UInt8](repeating: 0, count: 64)
        let n = recv(peer, &buf, buf.count, 0)
        #expect(n == 8 && String(decoding: buf.prefix(max(0, n)), as: UTF8.self) == "prepare\n")
        #expect(conn.pendingOutputBytes == 0)
        // The bufferevent goes on working: a later write still leaves with the loop.
        conn.write(Array("commit\n".utf8))
        let stop = Timer(loop: loop) { loop.stop() }
        stop.schedule(afterMs: 50)
        loop.run()
        let m = recv(peer, &buf, buf.count, 0)
        #expect(m == 7 && String(decoding: buf.prefix(max(0, m)), as: UTF8.self) == "commit\n")
    }

    /// Writes staged in one iteration leave together with one send, straight
    /// to the socket, without the loop ever watching it for writability; a
    /// close after flush on a fresh connection (libevent reports its empty
    /// buffer drained as soon as the socket is writable) still sends them.
    @Test func stagedWritesLeaveAtTheIterationsEndAndCloseAfterFlushWaitsForThem() throws {
        let loop = EventLoop()
        guard let (conn, peer) = connectedPair(loop) else { return }
        defer { close(peer) }
        var closed = false
        conn.onClose = { _, _ in closed = true }
        for line in ["one\n", "two\n", "three\n"] { conn.write(line) }
        #expect(conn.pendingOutputBytes == 14)
        conn.closeAfterFlush()
        let stop = Timer(loop: loop) { loop.stop() }
        stop.schedule(afterMs: 50)
        loop.run()
        var buf = [UInt8](repeating: 0, count: 64)
        let n = recv(peer, &buf, buf.count, 0)
        #expect(n == 14 && String(decoding: buf.prefix(max(0, n)), as: UTF8.self) == "one\ntwo\nthree\n")
        #expect(closed, "closed once everything was sent")
        #expect(recv(peer, &buf, buf.count, 0) == 0, "then the end of the stream")
    }

    /// A Connection over one end of a socket pair, and the other end
    /// (non-blocking) for the test to read.
    private func connectedPair(_ loop: EventLoop) -> (Connection, Int32)? {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else {
            Issue.record("socketpair failed")
            return nil
        }
        _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)
        guard let conn = Connection(loop: loop, fd: fds[0]) else {
            Issue.record("no connection")
            close(fds[1])
            return nil
        }
        return (conn, fds[1])
    }
}
