// Proposal: one change a leader wants replicated, waiting in the batch for
// the next round: the log operation, its Lamport stamp, and whom to answer
// (and how) once its entry commits. Invariant: a proposal leaves the batch
// either as a log entry of a round or answered with an error (never both,
// never neither).

struct Proposal {
    var op: LogEntry.Operation
    var lamport: UInt64
    var client: ReplyTarget?
    var answer: Answer = .ok

    /// How a client learns that its entry committed.
    enum Answer: Sendable {
        /// `OK <task-id> <lamport>` (or `... dup`, or a parked delivery's confirmation).
        case ok
        /// `TASK ...` (DEQUEUE).
        case task
        /// `JOB ...` (TAKE).
        case job
        /// `OK <moved>` (KICK).
        case moved
        /// `OK` (PAUSE).
        case plain
    }
}
