// The libevent wrapper on a real loop: backend, timers, deferred events,
// signals, and a TCP round trip through Listener and Connection.
import Glibc
import Reactor
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
}
