// LineParser: one protocol line (without its "\n" and trailing "\r") to a
// command, or to the ERR reply it deserves. It never traps on input: any byte
// sequence is either a command, an error, or a blank line (no reply).

public enum ParsedLine: Equatable, Sendable {
    case command(ClientCommand)
    case error(ErrorCode, String)
    case blank
}

public enum LineParser {
    /// The longest wait a DEQUEUE may ask for: one day.
    public static let maxWaitMs = 86_400_000

    public static func parse(_ line: ArraySlice<UInt8>) -> ParsedLine {
        var i = line.startIndex
        while i < line.endIndex, isBlank(line[i]) { i += 1 }
        if i == line.endIndex { return .blank }
        let verbStart = i
        while i < line.endIndex, !isBlank(line[i]) { i += 1 }
        let verb = upper(line[verbStart..<i])
        // ENQUEUE keeps every byte after the single separator, spaces included.
        let rest = i < line.endIndex ? line[(i + 1)...] : line[line.endIndex...]

        switch verb {
        case "ENQUEUE":
            if rest.isEmpty { return .error(.badarg, "ENQUEUE needs a payload") }
            return .command(.enqueue(payload: Array(rest)))
        case "DEQUEUE":
            let args = words(rest)
            if args.isEmpty { return .command(.dequeue(waitMs: nil)) }
            guard args.count == 1 else { return .error(.badarg, "usage: DEQUEUE [<wait-ms>]") }
            guard let ms = decimal(args[0]), ms <= UInt64(maxWaitMs) else {
                return .error(.badarg, "wait-ms must be an integer from 0 to \(maxWaitMs)")
            }
            return .command(.dequeue(waitMs: Int(ms)))
        case "ACK":
            let args = words(rest)
            guard args.count == 1 else { return .error(.badarg, "usage: ACK <task-id>") }
            guard let id = decimal(args[0]) else {
                return .error(.badarg, "task-id must be a decimal unsigned 64-bit integer")
            }
            return .command(.ack(taskId: id))
        case "HELLO":
            let args = words(rest)
            guard args.count == 1 || args.count == 2 else {
                return .error(.badarg, "usage: HELLO <client-id> [<lamport>]")
            }
            let id = String(decoding: args[0], as: UTF8.self)
            guard id.utf8.count <= 128 else { return .error(.badarg, "client-id is longer than 128 bytes") }
            var lamport: UInt64?
            if args.count == 2 {
                guard let l = decimal(args[1]) else {
                    return .error(.badarg, "lamport must be a decimal unsigned 64-bit integer")
                }
                lamport = l
            }
            return .command(.hello(clientId: id, lamport: lamport))
        case "AUTH":
            let args = words(rest)
            guard args.count == 1 else { return .error(.badarg, "usage: AUTH <token>") }
            return .command(.auth(token: String(decoding: args[0], as: UTF8.self)))
        case "STATUS", "PING", "HELP", "QUIT":
            guard words(rest).isEmpty else { return .error(.badarg, "\(verb) takes no arguments") }
            switch verb {
            case "STATUS": return .command(.status)
            case "PING": return .command(.ping)
            case "HELP": return .command(.help)
            default: return .command(.quit)
            }
        default:
            if let parsed = parseQueueVerb(verb, rest) { return parsed }
            return .error(.badcmd, "unknown command '\(printable(line[verbStart..<i]))'")
        }
    }

    @inline(__always)
    static func isBlank(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }

    static func upper(_ s: ArraySlice<UInt8>) -> String {
        guard s.count <= 16 else { return "" }
        var out = [UInt8]()
        out.reserveCapacity(s.count)
        for b in s { out.append(b >= 0x61 && b <= 0x7A ? b - 0x20 : b) }
        return String(decoding: out, as: UTF8.self)
    }

    static func words(_ s: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        s.split(whereSeparator: isBlank)
    }

    /// Strict unsigned decimal: digits only, no sign, no overflow.
    static func decimal(_ s: ArraySlice<UInt8>) -> UInt64? {
        guard !s.isEmpty, s.count <= 20 else { return nil }
        var v: UInt64 = 0
        for b in s {
            guard b >= 0x30, b <= 0x39 else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(b - 0x30))
            if o1 || o2 { return nil }
            v = a
        }
        return v
    }

    /// The verb as it can safely be echoed in one reply line.
    static func printable(_ s: ArraySlice<UInt8>) -> String {
        let clipped = s.prefix(32).map { $0 >= 0x20 && $0 < 0x7F ? $0 : UInt8(ascii: "?") }
        return String(decoding: clipped, as: UTF8.self) + (s.count > 32 ? "..." : "")
    }
}
