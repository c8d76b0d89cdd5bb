// Reply: what a command answers, rendered as exactly one "\n"-terminated line.
// Rendering appends ASCII straight into the connection's output bytes: the hot
// path (OK / TASK) allocates nothing but the buffer growth.

public enum Reply: Equatable, Sendable {
    case ok(taskId: UInt64, lamport: UInt64)
    /// A PUT whose key was put before: the first task's OK, marked `dup`.
    case duplicate(taskId: UInt64, lamport: UInt64)
    /// TAKE: the task, its queue and its delivery count.
    case job(taskId: UInt64, lamport: UInt64, queue: String, deliveries: UInt32, payload: [UInt8])
    /// KICK: how many tasks moved.
    case moved(Int)
    /// STATS of one queue.
    case stats(String)
    /// STATS without a queue: one STATS line per queue, then END.
    case statsList([String])
    case queued(ref: String, lamport: UInt64)
    case task(taskId: UInt64, lamport: UInt64, payload: [UInt8])
    case empty
    case hello(nodeId: Int, lamport: UInt64)
    case status(String)
    case plainOK
    case pong
    case help
    case bye
    case error(ErrorCode, String)
    /// A reply another node rendered (a follower relaying the leader's), without its newline.
    case relayed([UInt8])

    public func render(into out: inout [UInt8]) {
        switch self {
        case .ok(let id, let l):
            out.append(contentsOf: [0x4F, 0x4B, 0x20]) // "OK "
            appendDecimal(id, to: &out)
            out.append(0x20)
            appendDecimal(l, to: &out)
        case .duplicate(let id, let l):
            out.append(contentsOf: [0x4F, 0x4B, 0x20]) // "OK "
            appendDecimal(id, to: &out)
            out.append(0x20)
            appendDecimal(l, to: &out)
            out.append(contentsOf: " dup".utf8)
        case .job(let id, let l, let queue, let deliveries, let payload):
            out.append(contentsOf: "JOB ".utf8)
            appendDecimal(id, to: &out)
            out.append(0x20)
            appendDecimal(l, to: &out)
            out.append(0x20)
            out.append(contentsOf: queue.utf8)
            out.append(0x20)
            appendDecimal(UInt64(deliveries), to: &out)
            out.append(0x20)
            out.append(contentsOf: payload)
        case .moved(let n):
            out.append(contentsOf: "OK ".utf8)
            appendDecimal(UInt64(n), to: &out)
        case .stats(let line):
            out.append(contentsOf: "STATS ".utf8)
            out.append(contentsOf: line.utf8)
        case .statsList(let lines):
            for l in lines {
                out.append(contentsOf: "STATS ".utf8)
                out.append(contentsOf: l.utf8)
                out.append(0x0A)
            }
            out.append(contentsOf: "END".utf8)
        case .queued(let ref, let l):
            out.append(contentsOf: "QUEUED ".utf8)
            out.append(contentsOf: ref.utf8)
            out.append(0x20)
            appendDecimal(l, to: &out)
        case .task(let id, let l, let payload):
            out.append(contentsOf: "TASK ".utf8)
            appendDecimal(id, to: &out)
            out.append(0x20)
            appendDecimal(l, to: &out)
            out.append(0x20)
            out.append(contentsOf: payload)
        case .empty:
            out.append(contentsOf: "EMPTY".utf8)
        case .hello(let node, let l):
            out.append(contentsOf: "HELLO ".utf8)
            appendDecimal(UInt64(node), to: &out)
            out.append(0x20)
            appendDecimal(l, to: &out)
            out.append(contentsOf: " meshq/2".utf8)
        case .status(let line):
            out.append(contentsOf: "STATUS ".utf8)
            out.append(contentsOf: line.utf8)
        case .plainOK:
            out.append(contentsOf: "OK".utf8)
        case .pong:
            out.append(contentsOf: "PONG".utf8)
        case .help:
            out.append(contentsOf: "HELP ".utf8)
            out.append(contentsOf: ClientCommand.helpText.utf8)
        case .bye:
            out.append(contentsOf: "BYE".utf8)
        case .relayed(let line):
            out.append(contentsOf: line)
        case .error(let code, let text):
            out.append(contentsOf: "ERR ".utf8)
            out.append(contentsOf: code.rawValue.utf8)
            out.append(0x20)
            // One line, whatever the text holds.
            for b in text.utf8 { out.append(b == 0x0A || b == 0x0D ? 0x20 : b) }
        }
        out.append(0x0A)
    }

    public var line: String {
        var out = [UInt8]()
        render(into: &out)
        return String(decoding: out, as: UTF8.self)
    }
}

@inline(__always)
public func appendDecimal(_ v: UInt64, to out: inout [UInt8]) {
    var width = 1
    var probe = v
    while probe >= 10 { probe /= 10; width += 1 }
    let end = out.count + width
    out.append(contentsOf: repeatElement(0x30, count: width))
    var v = v
    var i = end - 1
    while v > 0 {
        out[i] = 0x30 + UInt8(v % 10)
        v /= 10
        i -= 1
    }
}
