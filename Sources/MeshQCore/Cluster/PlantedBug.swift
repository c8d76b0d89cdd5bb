// PlantedBug: deliberate faults the simulator's tests switch on (through
// @testable import only) to prove that each invariant check can fail. The
// switches exist only in builds with -D MESHQ_TESTING (`make test`, `make
// sim`); elsewhere every check of them is the constant `false`, so release
// binaries carry no way to plant anything.

enum PlantedBug: Hashable, Sendable {
    /// BullyElection votes for every candidate of an epoch (invariant 1).
    case voteTwicePerEpoch
    /// NodeCore ignores the Lamport stamp of received messages (invariant 5).
    case skipLamportMerge
    /// BullyElection never lets a higher node take over from a lower leader (liveness).
    case noBullyTakeover
    /// A new leader serves from its own log without adopting its best voter's (invariant 2).
    case skipRecovery
    /// A committed ACK leaves the task in the queue (invariant 3).
    case ackNotApplied
    /// Ricart-Agrawala replies at once even from inside the section (invariant 4).
    case mutexNeverDefers
    /// A parked task is applied on every delivery, duplicates included (invariant 6).
    case parkedAppliedTwice
    /// A leader keeps serving DEQUEUE from local state without knowing a
    /// majority still hears it (the task-after-ACK check).
    case leaseNeverExpires
    /// A follower acts on an ABORT whatever its epoch and round (log agreement).
    case abortIgnoresEpoch
    /// A follower accepts PREPARE from an epoch older than it promised (log agreement).
    case prepareWithoutPromise
    /// A new leader recovers from the voter with the highest last index,
    /// ignoring the epoch of that entry (invariant 2).
    case recoveryByIndexOnly
    /// Installing a snapshot drops the log's suffix even when it matches.
    case snapshotDropsSuffix
    /// The failure detector believes the transport: a peer is alive while its
    /// connection is open, however silent (liveness under freezes and cuts).
    case trustTransport
    /// A node whose log was found corrupt (records it wrote, and may have
    /// acknowledged, cut away) votes at once, as after a torn tail, instead
    /// of catching up first (invariant 2: an OK'd task is lost). Only where
    /// records remain: a log cut to nothing is `emptyLogVotesAtOnce`'s.
    case corruptionAsTornTail
    /// A node that starts with an empty log (a wiped data_dir) votes at once,
    /// as a new node would, instead of catching up first (invariant 2).
    case emptyLogVotesAtOnce
    /// TAKE leases the ready task with the smallest id, whatever its priority
    /// (the ready-order check).
    case readyIgnoresPriority
    /// A PUT's delay= counts half (the due-time check).
    case delayFiresEarly
    /// The leader leases a task past its queue's max_deliveries instead of
    /// dead-lettering it (the delivery-cap check).
    case deliveryCapIgnored
    /// Applying a PUT skips the key check (the leader's fast path still
    /// answers a key it holds): a PUT racing the first one's commit, a
    /// parked one or one across a failover makes a second task (the
    /// one-key-one-task checks).
    case dedupSkippedAtApply
    /// A committed TOUCH leaves the lease's deadline as it was (the TOUCH check).
    case touchNotApplied
}

extension TaskStore {
    /// `readyIgnoresPriority`: the ready task of the first listed queue
    /// that has one with the smallest id.
    func nextReadyIgnoringPriority(in queues: [String]) -> QueuedTask? {
        for q in queues where !isPaused(q) {
            if let id = line(q)?.ready.sorted.map(\.key).min() { return task(id) }
        }
        return nil
    }

    /// `dedupSkippedAtApply`: the key of `t` is forgotten before `t` applies.
    mutating func forgetKey(of op: LogEntry.Operation) {
        switch op {
        case .enqueue(let t), .enqueueParked(let t, _, _):
            if let k = t.key { keys[DedupKey(queue: t.queue, key: k)] = nil }
        default: break
        }
    }
}

extension LogEntry.Operation {
    /// A PUT or ENQUEUE, direct or parked (`dedupSkippedAtApply`).
    var isPut: Bool {
        switch self {
        case .enqueue, .enqueueParked: return true
        default: return false
        }
    }
}
