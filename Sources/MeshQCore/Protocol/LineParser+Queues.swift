// LineParser's protocol-2 verbs: PUT, TAKE, TOUCH, NACK with a delay, BURY,
// KICK, PAUSE, STATS and PEEK. Every malformed argument is an
// `ERR BADARG` naming what is wrong; nothing here traps or takes a default
// for a value it could not read.

extension LineParser {
    /// The longest delay, pause or lease a command may ask for: 365 days.
    public static let maxDelayMs = 31_536_000_000
    public static let maxQueueNameBytes = 64
    public static let maxKeyBytes = 128

    static func parseQueueVerb(_ verb: String, _ rest: ArraySlice<UInt8>) -> ParsedLine? {
        switch verb {
        case "PUT": return parsePut(rest)
        case "TAKE":
            let args = words(rest)
            guard args.count == 1 || args.count == 2 else { return .error(.badarg, "usage: TAKE <queue>[,<queue>...] [<wait-ms>]") }
            var queues: [String] = []
            for part in args[0].split(separator: 0x2C, omittingEmptySubsequences: false) {
                guard let q = queueName(part) else { return .error(.badarg, badQueue(part)) }
                if !queues.contains(q) { queues.append(q) }
            }
            guard queues.count <= 64 else { return .error(.badarg, "TAKE lists at most 64 queues") }
            var wait: Int?
            if args.count == 2 {
                guard let ms = decimal(args[1]), ms <= UInt64(maxWaitMs) else {
                    return .error(.badarg, "wait-ms must be an integer from 0 to \(maxWaitMs)")
                }
                wait = Int(ms)
            }
            return .command(.take(queues: queues, waitMs: wait))
        case "TOUCH", "NACK":
            let args = words(rest)
            guard args.count == 1 || args.count == 2 else {
                return .error(.badarg, verb == "TOUCH" ? "usage: TOUCH <task-id> [<ms>]" : "usage: NACK <task-id> [<delay-ms>]")
            }
            guard let id = decimal(args[0]) else { return .error(.badarg, "task-id must be a decimal unsigned 64-bit integer") }
            var ms: Int?
            if args.count == 2 {
                let low: UInt64 = verb == "TOUCH" ? 1 : 0
                guard let v = decimal(args[1]), v >= low, v <= UInt64(maxDelayMs) else {
                    return .error(.badarg, "\(verb == "TOUCH" ? "ms" : "delay-ms") must be an integer from \(low) to \(maxDelayMs)")
                }
                ms = Int(v)
            }
            return .command(verb == "TOUCH" ? .touch(taskId: id, ms: ms) : .nack(taskId: id, delayMs: ms))
        case "BURY":
            let args = words(rest)
            guard args.count == 1 else { return .error(.badarg, "usage: BURY <task-id>") }
            guard let id = decimal(args[0]) else { return .error(.badarg, "task-id must be a decimal unsigned 64-bit integer") }
            return .command(.bury(taskId: id))
        case "KICK":
            let args = words(rest)
            guard args.count == 1 || args.count == 2 else { return .error(.badarg, "usage: KICK <queue> [<count>]") }
            guard let q = queueName(args[0]) else { return .error(.badarg, badQueue(args[0])) }
            var count: Int?
            if args.count == 2 {
                guard let n = decimal(args[1]), n <= UInt64(UInt32.max) else {
                    return .error(.badarg, "count must be an integer from 0 to \(UInt32.max)")
                }
                count = Int(n)
            }
            return .command(.kick(queue: q, count: count))
        case "PAUSE":
            let args = words(rest)
            guard args.count == 2 else { return .error(.badarg, "usage: PAUSE <queue> <ms>") }
            guard let q = queueName(args[0]) else { return .error(.badarg, badQueue(args[0])) }
            guard let ms = decimal(args[1]), ms <= UInt64(maxDelayMs) else {
                return .error(.badarg, "ms must be an integer from 0 to \(maxDelayMs)")
            }
            return .command(.pause(queue: q, ms: Int(ms)))
        case "STATS":
            let args = words(rest)
            guard args.count <= 1 else { return .error(.badarg, "usage: STATS [<queue>]") }
            if args.isEmpty { return .command(.stats(queue: nil)) }
            guard let q = queueName(args[0]) else { return .error(.badarg, badQueue(args[0])) }
            return .command(.stats(queue: q))
        case "PEEK":
            let args = words(rest)
            guard args.count == 1 else { return .error(.badarg, "usage: PEEK <queue>") }
            guard let q = queueName(args[0]) else { return .error(.badarg, badQueue(args[0])) }
            return .command(.peek(queue: q))
        default:
            return nil
        }
    }

    /// PUT <queue> <opts> <payload>: the payload is every byte after the
    /// single space that follows the options.
    static func parsePut(_ rest: ArraySlice<UInt8>) -> ParsedLine {
        let usage = "usage: PUT <queue> <opts|-> <payload>"
        guard let qEnd = rest.firstIndex(where: isBlank) else {
            return .error(.badarg, rest.isEmpty ? usage : "PUT needs options (or -) and a payload")
        }
        guard let q = queueName(rest[rest.startIndex..<qEnd]) else { return .error(.badarg, badQueue(rest[rest.startIndex..<qEnd])) }
        let afterQ = rest[(qEnd + 1)...]
        let oEnd = afterQ.firstIndex(where: isBlank) ?? afterQ.endIndex
        let opts = afterQ[afterQ.startIndex..<oEnd]
        guard !opts.isEmpty else { return .error(.badarg, "PUT needs options (or -) between the queue and the payload") }
        let options: PutOptions
        switch putOptions(opts) {
        case .success(let o): options = o
        case .failure(let e): return .error(.badarg, e.text)
        }
        guard oEnd < afterQ.endIndex, oEnd + 1 < afterQ.endIndex else { return .error(.badarg, "PUT needs a payload") }
        return .command(.put(queue: q, options: options, payload: Array(afterQ[(oEnd + 1)...])))
    }

    struct OptionError: Error { var text: String }

    private enum PutOption: UInt8 {
        case pri = 1, delay = 2, key = 4

        /// The option a name spells, compared as bytes (no string is made).
        init?(_ name: ArraySlice<UInt8>) {
            if name.elementsEqual("pri".utf8) { self = .pri }
            else if name.elementsEqual("delay".utf8) { self = .delay }
            else if name.elementsEqual("key".utf8) { self = .key }
            else { return nil }
        }
    }

    /// `pri=N,delay=MS,key=K` in any order, each at most once (or `-`: none).
    /// Walks the bytes once: on the PUT path, nothing is allocated but the key.
    static func putOptions(_ s: ArraySlice<UInt8>) -> Result<PutOptions, OptionError> {
        var o = PutOptions()
        if s.count == 1 && s.first == UInt8(ascii: "-") { return .success(o) }
        var seen: UInt8 = 0
        var start = s.startIndex
        while true {
            let end = s[start...].firstIndex(of: 0x2C) ?? s.endIndex
            let part = s[start..<end]
            guard let eq = part.firstIndex(of: UInt8(ascii: "=")) else {
                return .failure(OptionError(text: "option '\(printable(part))' is not name=value (pri=, delay=, key=)"))
            }
            let nameBytes = part[part.startIndex..<eq]
            let value = part[(eq + 1)...]
            guard let option = PutOption(nameBytes) else {
                return .failure(OptionError(text: "unknown option '\(printable(nameBytes))' (pri=, delay=, key=)"))
            }
            guard seen & option.rawValue == 0 else {
                return .failure(OptionError(text: "option \(printable(nameBytes))= is given twice"))
            }
            seen |= option.rawValue
            switch option {
            case .pri:
                guard let v = decimal(value), v <= UInt64(UInt32.max) else {
                    return .failure(OptionError(text: "pri must be an integer from 0 to \(UInt32.max)"))
                }
                o.priority = UInt32(v)
            case .delay:
                guard let v = decimal(value), v <= UInt64(maxDelayMs) else {
                    return .failure(OptionError(text: "delay must be an integer from 0 to \(maxDelayMs) (ms)"))
                }
                o.delayMs = Int(v)
            case .key:
                guard !value.isEmpty, value.count <= maxKeyBytes, value.allSatisfy(isKeyByte) else {
                    return .failure(OptionError(text: "key must be 1-\(maxKeyBytes) bytes of [A-Za-z0-9._:/-]"))
                }
                o.key = String(decoding: value, as: UTF8.self)
            }
            guard end < s.endIndex else { return .success(o) }
            start = s.index(after: end)
        }
    }

    /// A queue name: 1-64 bytes of [A-Za-z0-9._-].
    public static func queueName(_ s: ArraySlice<UInt8>) -> String? {
        guard !s.isEmpty, s.count <= maxQueueNameBytes, s.allSatisfy(isQueueByte) else { return nil }
        return String(decoding: s, as: UTF8.self)
    }

    public static func isValidQueueName(_ s: String) -> Bool { queueName(ArraySlice(s.utf8)) != nil }

    static func badQueue(_ s: ArraySlice<UInt8>) -> String {
        "queue name '\(printable(s))' must be 1-\(maxQueueNameBytes) bytes of [A-Za-z0-9._-]"
    }

    static func isQueueByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2E || b == 0x5F || b == 0x2D
    }

    static func isKeyByte(_ b: UInt8) -> Bool { isQueueByte(b) || b == 0x3A || b == 0x2F }
}
