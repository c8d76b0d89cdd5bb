// ReplyOutcome against the replies the daemon sends today (texts copied from
// NodeCore): which may be sent again elsewhere, which have an unknown outcome.
import Testing
import MeshQCore

@Suite struct ReplyOutcomeTests {
    @Test func noquorumAndMaybeAppliedNoleaderAreUnknown() {
        for r in [
            "ERR NOQUORUM no majority acknowledged within commit_timeout_ms (2000 ms); the outcome is unknown: a later leader may still apply it",
            "ERR NOQUORUM a majority cannot be reached (too few peers up or willing); the outcome is unknown: a later leader may still apply it",
            "ERR NOLEADER leadership was lost before this change committed; the next leader may still apply it",
            "ERR NOLEADER no answer from leader 3 in time; the command may have been applied",
            "ERR NOLEADER the leader was lost while the command was in flight; it may have been applied",
        ] {
            #expect(ReplyOutcome(reply: r) == .unknown, "\(r)")
        }
    }

    @Test func noleaderThatNeverReachedALeaderMayBeSentAgain() {
        for r in [
            "ERR NOLEADER no leader is reachable",
            "ERR NOLEADER node 2 is not the leader",
            "ERR NOLEADER this node stopped leading before the change was replicated; nothing was committed",
            "ERR NOLEADER this node stopped leading",
        ] {
            #expect(ReplyOutcome(reply: r) == .notApplied, "\(r)")
        }
    }

    @Test func answersAndFinalRefusalsAreTheOutcome() {
        for r in [
            "OK 12 40", "QUEUED 2-7 41", "TASK 3 9 payload may be here", "EMPTY",
            "ERR BUSY queued payload is at max_memory_mb (1024)", "ERR NOTFOUND no task 5 (never enqueued, or already acked)",
            "ERR TOOLARGE payload is 70000 bytes, max_payload_bytes is 65536", "ERR BADARG ENQUEUE needs a payload",
            "ERR AUTH wrong token",
        ] {
            #expect(ReplyOutcome(reply: r) == .answered, "\(r)")
        }
    }

    @Test func mayMustBeAWordNotPartOfOne() {
        #expect(ReplyOutcome(reply: "ERR NOLEADER dismayed") == .notApplied)
        #expect(ReplyOutcome(reply: "ERR NOLEADER It MAY have been applied.") == .unknown)
    }
}
