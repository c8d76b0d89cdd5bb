// SignalWatcher: a signal delivered as a normal loop callback (libevent's
// self-pipe), so handlers may touch any state safely.
import CLibevent

public final class SignalWatcher {
    private var event: OpaquePointer?
    private let callback: () -> Void

    public init(loop: EventLoop, signal: Int32, _ callback: @escaping () -> Void) {
        self.callback = callback
        let flags = Int16(meshq_ev_signal() | meshq_ev_persist())
        event = event_new(loop.base, signal, flags, { _, _, ctx in
            Unmanaged<SignalWatcher>.fromOpaque(ctx!).takeUnretainedValue().callback()
        }, Unmanaged.passUnretained(self).toOpaque())
        event_add(event, nil)
    }

    deinit {
        if let event {
            event_del(event)
            event_free(event)
        }
    }
}

/// Process-wide signal dispositions, for programs that watch signals some
/// other way (a Dispatch source) and must not die of the default action.
public enum ProcessSignals {
    public static func ignore(_ signal: Int32) { meshq_ignore_signal(signal) }
}
