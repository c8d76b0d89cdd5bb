// EventLoop: one libevent base, run on one thread. Everything in meshqd happens
// inside its callbacks, so no lock is ever needed above this layer.
// Three priorities: I/O and timers run at 1, and `DeferredEvent`s at 2 run only
// after every other ready event of the same iteration; that is how a batch of
// client commands read in one iteration is committed with one fsync.
import CLibevent
import Glibc

public final class EventLoop {
    let base: OpaquePointer

    /// The backend libevent picked ("epoll" on Linux).
    public let method: String

    /// Where plain connections receive straight from their sockets: one per
    /// loop, since only one callback runs at a time.
    let readScratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 16)
    /// Connections with writes staged this iteration (Connection's file comment).
    private var toFlush: [Connection] = []
    private var flushEvent: DeferredEvent?

    public init() {
        meshq_ignore_sigpipe()
        meshq_unblock_all_signals()
        let cfg = event_config_new()
        // IGNORE_ENV: EVENT_NOEPOLL in the environment must not silently
        // switch a production daemon to poll(2).
        event_config_set_flag(cfg, Int32(EVENT_BASE_FLAG_IGNORE_ENV.rawValue))
        guard let base = event_base_new_with_config(cfg) else {
            fatalError("libevent: cannot create an event base")
        }
        event_config_free(cfg)
        event_base_priority_init(base, 3)
        self.base = base
        self.method = String(cString: event_base_get_method(base))
    }

    /// `c` staged a write: it is flushed when this iteration's other
    /// events have run, unless its owner flushed it first.
    func flushAtIterationEnd(_ c: Connection) {
        toFlush.append(c)
        if flushEvent == nil {
            flushEvent = DeferredEvent(loop: self) { [unowned self] in
                let list = self.toFlush
                self.toFlush.removeAll(keepingCapacity: true)
                for c in list { c.flushNow() }
            }
        }
        flushEvent!.activate()
    }

    deinit {
        flushEvent = nil
        event_base_free(base)
        readScratch.deallocate()
    }

    /// Runs until `stop()` or until nothing is left to wait for.
    public func run() {
        event_base_dispatch(base)
    }

    /// Runs one iteration, blocking until at least one event is ready.
    public func runOnce() {
        event_base_loop(base, EVLOOP_ONCE)
    }

    /// Ends `run()` after the callbacks of the current iteration.
    public func stop() {
        event_base_loopbreak(base)
    }
}

/// Clock reads live here, at the OS boundary; protocol code gets `now` as input.
public enum Clock {
    /// Monotonic milliseconds: for timeouts and leases.
    public static func monotonicMs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    /// Monotonic nanoseconds: for latency measurement.
    public static func monotonicNs() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Wall-clock milliseconds since the epoch: for Cristian sync and timestamps.
    public static func wallMs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

func makeTimeval(ms: Int) -> timeval {
    let ms = max(0, ms)
    return timeval(tv_sec: ms / 1000, tv_usec: (ms % 1000) * 1000)
}
