// Timer: a one-shot or repeating libevent timer. Rescheduling replaces the
// pending deadline, so callers keep one Timer per purpose and move it, instead
// of piling up timers.
import CLibevent

public final class Timer {
    private var event: OpaquePointer?
    private let callback: () -> Void
    private let repeating: Bool
    private var intervalMs = 0

    public init(loop: EventLoop, repeating: Bool = false, _ callback: @escaping () -> Void) {
        self.callback = callback
        self.repeating = repeating
        let flags = Int16(repeating ? meshq_ev_persist() : 0)
        event = event_new(loop.base, -1, flags, { _, _, ctx in
            Unmanaged<Timer>.fromOpaque(ctx!).takeUnretainedValue().callback()
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        if let event {
            event_del(event)
            event_free(event)
        }
    }

    /// Fires after `ms` (and every `ms` after that for a repeating timer).
    public func schedule(afterMs ms: Int) {
        intervalMs = ms
        var tv = makeTimeval(ms: ms)
        event_add(event, &tv)
    }

    public func cancel() {
        event_del(event)
    }

    public var isScheduled: Bool {
        event_pending(event, Int16(meshq_ev_timeout()), nil) != 0
    }
}
