// ReplyOutcome: what a client may conclude from the reply to a command that
// changes state (ENQUEUE, ACK, NACK), per docs/protocol.md. Three answers:
//  - answered: the reply is the outcome (OK, QUEUED, or an ERR that refuses
//    the command for good: BADARG, TOOLARGE, NOTFOUND, BUSY, AUTH, BADCMD);
//  - notApplied: nothing took effect and another node may take the command
//    now (`ERR NOLEADER` when no leader was reachable or the command never
//    reached one: "no leader is reachable", "node N is not the leader",
//    "... nothing was committed", "this node stopped leading");
//  - unknown: it may have been applied or may still be, by a later leader
//    (`ERR NOQUORUM`, and `ERR NOLEADER` whose text says it "may" have been
//    applied or a next leader "may" still apply it). Sending such a command
//    again can apply it twice.
// Invariant: a NOLEADER is unknown exactly when its text contains "may", so
// the daemon must word every NOLEADER after which the change may still
// commit with "may" (as NodeCore does today), and never use it otherwise.
public enum ReplyOutcome: Equatable, Sendable {
    case answered
    case notApplied
    case unknown

    public init(reply: String) {
        if reply.hasPrefix("ERR NOQUORUM") {
            self = .unknown
        } else if reply.hasPrefix("ERR NOLEADER") {
            self = Self.saysMaybe(reply) ? .unknown : .notApplied
        } else {
            self = .answered
        }
    }

    /// True when the text says the change may have taken (or may still take) effect.
    private static func saysMaybe(_ reply: String) -> Bool {
        reply.lowercased().split(whereSeparator: { !$0.isLetter }).contains("may")
    }
}
