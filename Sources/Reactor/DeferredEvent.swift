// DeferredEvent: a callback that runs once, at low priority, after all the
// I/O events of the current loop iteration. Activating it several times in one
// iteration still runs it once: the natural place for group commit.
import CLibevent

public final class DeferredEvent {
    private var event: OpaquePointer?
    private let callback: () -> Void
    private var active = false

    public init(loop: EventLoop, _ callback: @escaping () -> Void) {
        self.callback = callback
        event = event_new(loop.base, -1, 0, { _, _, ctx in
            let me = Unmanaged<DeferredEvent>.fromOpaque(ctx!).takeUnretainedValue()
            me.active = false
            me.callback()
        }, Unmanaged.passUnretained(self).toOpaque())
        event_priority_set(event, 2)
    }

    deinit {
        if let event {
            event_del(event)
            event_free(event)
        }
    }

    public func activate() {
        if active { return }
        active = true
        event_active(event, Int32(meshq_ev_timeout()), 1)
    }
}
