// ClientWatch: the clocks of hostile-client defence, for every client session
// of a NodeServer, on one timer that ticks every tenth of the shortest timeout
// in force (10 ms to 250 ms):
// - auth_timeout_ms (client_token set): a connection not authenticated that
//   long after it was first seen gets `ERR AUTH authentication timeout` and is
//   closed, whatever it sent meanwhile (PING does not keep it);
// - idle_timeout_ms (0 = off): a connection that owes nothing (no reply
//   pending, no blocking DEQUEUE) and sent no complete line for that long is
//   closed without a reply; bytes of a line never finished do not count;
// - a wrong AUTH's delayed answer (ClientSession.authPenalty) is released.
// Times are taken at ticks, so a timeout fires at most one tick late and never
// early. Settings are read at every tick, so SIGHUP applies to live connections.
import MeshQCore
import Reactor

final class ClientWatch {
    private struct Track {
        var firstSeenMs: Int64
        var lines: UInt64
        var lastLineMs: Int64
        var penaltySeq: UInt64?
        var penaltySinceMs: Int64
    }

    private var timer: Timer!
    private let settings: () -> ClusterSettings
    private let sessions: () -> [UInt64: ClientSession]
    private var tracks: [UInt64: Track] = [:]

    init(loop: EventLoop, settings: @escaping () -> ClusterSettings,
         sessions: @escaping () -> [UInt64: ClientSession]) {
        self.settings = settings
        self.sessions = sessions
        timer = Timer(loop: loop) { [unowned self] in self.tick() }
        timer.schedule(afterMs: Self.periodMs(settings()))
    }

    static func periodMs(_ s: ClusterSettings) -> Int {
        var shortest = 2_500
        if s.clientToken != nil, s.authTimeoutMs > 0 { shortest = min(shortest, s.authTimeoutMs) }
        if s.idleTimeoutMs > 0 { shortest = min(shortest, s.idleTimeoutMs) }
        return max(10, shortest / 10)
    }

    private func tick() {
        let s = settings()
        sweep(now: Clock.monotonicMs(), settings: s)
        timer.schedule(afterMs: Self.periodMs(s))
    }

    func sweep(now: Int64, settings s: ClusterSettings) {
        let live = sessions()
        if tracks.count > live.count { tracks = tracks.filter { live[$0.key] != nil } }
        for (id, session) in live {
            var t = tracks[id] ?? Track(firstSeenMs: now, lines: session.linesReceived, lastLineMs: now,
                                        penaltySeq: nil, penaltySinceMs: now)
            if session.linesReceived != t.lines {
                t.lines = session.linesReceived
                t.lastLineMs = now
            }
            if let p = session.authPenalty {
                if t.penaltySeq != p.seq { t.penaltySeq = p.seq; t.penaltySinceMs = now }
                if now - t.penaltySinceMs >= Int64(p.delayMs) { session.releaseAuthPenalty() }
            }
            tracks[id] = t
            if s.clientToken != nil, s.authTimeoutMs > 0, !session.isAuthenticated,
               now - t.firstSeenMs >= Int64(s.authTimeoutMs) {
                session.expire(.error(.auth, "authentication timeout: no AUTH <token> within auth_timeout_ms (\(s.authTimeoutMs))"))
            } else if s.idleTimeoutMs > 0, session.owesNothing, now - t.lastLineMs >= Int64(s.idleTimeoutMs) {
                session.expire(nil)
            }
        }
    }
}
