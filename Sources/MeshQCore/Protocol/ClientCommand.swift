// ClientCommand: one parsed line of the client protocol.

public enum ClientCommand: Equatable, Sendable {
    case hello(clientId: String, lamport: UInt64?)
    case enqueue(payload: [UInt8])
    case dequeue(waitMs: Int?)
    case ack(taskId: UInt64)
    case nack(taskId: UInt64)
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

    public static let helpText =
        "HELLO <client-id> [<lamport>] | ENQUEUE <payload> | DEQUEUE [<wait-ms>] | ACK <task-id> | NACK <task-id> | STATUS | AUTH <token> | PING | HELP | QUIT"
}
