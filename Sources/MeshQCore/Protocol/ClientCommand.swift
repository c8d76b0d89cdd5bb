// ClientCommand: one parsed line of the client protocol (protocol 1's verbs
// on the queue `default`, and protocol 2's named queues and task options).

public enum ClientCommand: Equatable, Sendable {
    case hello(clientId: String, lamport: UInt64?)
    case enqueue(payload: [UInt8])
    case dequeue(waitMs: Int?)
    case ack(taskId: UInt64)
    case nack(taskId: UInt64, delayMs: Int? = nil)
    case put(queue: String, options: PutOptions, payload: [UInt8])
    case take(queues: [String], waitMs: Int?)
    case touch(taskId: UInt64, ms: Int?)
    case bury(taskId: UInt64)
    case kick(queue: String, count: Int?)
    case pause(queue: String, ms: Int)
    case stats(queue: String?)
    case peek(queue: String)
    case status
    case auth(token: String)
    case ping
    case help
    case quit

    /// Commands served before AUTH when the cluster sets client_token.
    public var allowedBeforeAuth: Bool {
        switch self {
        case .auth, .ping, .help, .quit: return true
        default: return false
        }
    }

    /// Commands the leader serves (a follower relays them).
    public var needsLeader: Bool {
        switch self {
        case .enqueue, .dequeue, .ack, .nack, .put, .take, .touch, .bury, .kick, .pause, .stats, .peek: return true
        default: return false
        }
    }

    public static let helpText =
        "HELLO <client-id> [<lamport>] | ENQUEUE <payload> | DEQUEUE [<wait-ms>] | ACK <task-id> | NACK <task-id> [<delay-ms>] | "
        + "PUT <queue> <opts|-> <payload> | TAKE <queue>[,<queue>...] [<wait-ms>] | TOUCH <task-id> [<ms>] | BURY <task-id> | "
        + "KICK <queue> [<count>] | PAUSE <queue> <ms> | STATS [<queue>] | PEEK <queue> | STATUS | AUTH <token> | PING | HELP | QUIT"
}

/// PUT's options: `pri=N`, `delay=MS`, `key=K`.
public struct PutOptions: Equatable, Sendable {
    public var priority: UInt32
    public var delayMs: Int
    public var key: String?

    public init(priority: UInt32 = QueuedTask.defaultPriority, delayMs: Int = 0, key: String? = nil) {
        self.priority = priority
        self.delayMs = delayMs
        self.key = key
    }
}
