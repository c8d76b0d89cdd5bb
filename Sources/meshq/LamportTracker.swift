// LamportTracker: the client's own Lamport clock. Every reply that carries a
// stamp (`OK id L`, `TASK id L ...`, `QUEUED ref L`, `HELLO node L ...`) is
// merged as max(local, received) + 1.
import MeshQCore

struct LamportTracker {
    private(set) var clock = LamportClock()

    mutating func observe(reply: String) {
        let parts = reply.split(separator: " ", maxSplits: 3)
        guard parts.count >= 3 else { return }
        switch parts[0] {
        case "OK", "TASK", "QUEUED", "HELLO":
            if let l = UInt64(parts[2]) { clock.merge(l) }
        default:
            break
        }
    }

    mutating func tickForSend() -> UInt64 { clock.tick() }
}
