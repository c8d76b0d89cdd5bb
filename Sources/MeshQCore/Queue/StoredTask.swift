// StoredTask: a task as TaskStore holds it, QueuedTask's fields (and where
// it stands) in 80 bytes. The task table is the biggest structure a node
// keeps (one slot per task, and a hash table runs between 3/8 and 3/4
// full), so every byte of a slot is paid about twice per task, and moved
// again whenever the table grows.
//   - The id is the table's key, not repeated here.
//   - The queue is a number in QueueNames (a store interns each name once).
//   - What most tasks lack (an idempotency key, a dead-letter origin) sits in
//     one shared, immutable TaskExtras, absent for a plain task.
// Where the task stands (ready, delayed, leased, busy), its handle in the
// heap that holds it and its busy count are the store's own bookkeeping,
// kept here so one lookup finds everything.
// Invariant: `materialized(id:names:)` gives back exactly the QueuedTask
// that `init(_:queue:)` was made from (tested field by field).

struct StoredTask: Sendable {
    var lamport: UInt64
    var enqueuedAtMs: Int64
    var readyAtMs: Int64
    var leasedUntilMs: Int64
    var leaseEpoch: UInt64
    var payload: [UInt8]
    var extras: TaskExtras?
    var priority: UInt32
    var deliveries: UInt32
    var queue: QueueNames.ID
    /// Changes to it being replicated (leader only).
    var busy: UInt32 = 0
    var place: TaskStore.Place = .ready
    /// Its handle in the heap its place keeps it in (ready: its queue's
    /// ready heap; delayed, leased: the timers), -1 in none.
    var handle: HandleHeap<UInt64>.Handle = -1

    init(_ t: QueuedTask, queue: QueueNames.ID) {
        lamport = t.lamport
        enqueuedAtMs = t.enqueuedAtMs
        readyAtMs = t.readyAtMs
        leasedUntilMs = t.leasedUntilMs
        leaseEpoch = t.leaseEpoch
        payload = t.payload
        extras = TaskExtras.of(t)
        priority = t.priority
        deliveries = t.deliveries
        self.queue = queue
    }

    mutating func stand(_ p: TaskStore.Place, handle h: HandleHeap<UInt64>.Handle) {
        place = p
        handle = h
    }

    func materialized(id: UInt64, names: QueueNames) -> QueuedTask {
        QueuedTask(id: id, lamport: lamport, enqueuedAtMs: enqueuedAtMs, payload: payload, queue: names[queue],
                   priority: priority, readyAtMs: readyAtMs, key: extras?.key, keyUntilMs: extras?.keyUntilMs ?? 0,
                   deliveries: deliveries, leasedUntilMs: leasedUntilMs, leaseEpoch: leaseEpoch,
                   origin: extras?.origin)
    }

    /// Takes every field of `t` but the id and the payload (a change never
    /// touches the payload, which stays shared).
    mutating func assign(_ t: QueuedTask, queue: QueueNames.ID) {
        lamport = t.lamport
        enqueuedAtMs = t.enqueuedAtMs
        readyAtMs = t.readyAtMs
        leasedUntilMs = t.leasedUntilMs
        leaseEpoch = t.leaseEpoch
        if t.key != extras?.key || t.keyUntilMs != (extras?.keyUntilMs ?? 0) || t.origin != extras?.origin {
            extras = TaskExtras.of(t)
        }
        priority = t.priority
        deliveries = t.deliveries
        self.queue = queue
    }
}

/// The rarely set fields of a task, shared by its copies.
final class TaskExtras: Sendable {
    let key: String?
    let keyUntilMs: Int64
    let origin: String?

    private init(key: String?, keyUntilMs: Int64, origin: String?) {
        self.key = key
        self.keyUntilMs = keyUntilMs
        self.origin = origin
    }

    /// Nil for a task with none of them.
    static func of(_ t: QueuedTask) -> TaskExtras? {
        guard t.key != nil || t.keyUntilMs != 0 || t.origin != nil else { return nil }
        return TaskExtras(key: t.key, keyUntilMs: t.keyUntilMs, origin: t.origin)
    }
}

/// Every queue name a store has seen, each with a small number. Names are
/// never forgotten (a node lists every queue it has seen), so a number is
/// never reused for another name.
struct QueueNames: Sendable {
    typealias ID = UInt32

    private var names: [String] = []
    private var ids: [String: ID] = [:]

    /// The name's number, given one if it is new.
    mutating func id(_ name: String) -> ID {
        if let id = ids[name] { return id }
        let id = ID(names.count)
        names.append(name)
        ids[name] = id
        return id
    }

    func existingId(_ name: String) -> ID? { ids[name] }

    subscript(id: ID) -> String { names[Int(id)] }

    var all: Set<String> { Set(names) }
}
