// QueueArgs: the client-side checks of protocol-2 arguments, by the server's
// rules (LineParser+Queues), so bad usage is exit 2 before anything is sent:
// a queue is 1-64 bytes of [A-Za-z0-9._-], a key 1-128 bytes of
// [A-Za-z0-9._:/-], a priority 0..4294967295, a delay, pause or lease at
// most 365 days (LineParser.maxDelayMs).
import ArgumentParser
import MeshQCore

enum QueueArgs {
    static func checkQueue(_ q: String, _ what: String = "queue") throws {
        guard LineParser.isValidQueueName(q) else {
            throw ValidationError("\(what) '\(q)' must be 1-\(LineParser.maxQueueNameBytes) bytes of [A-Za-z0-9._-]")
        }
    }

    static func checkKey(_ k: String) throws {
        let ok = !k.isEmpty && k.utf8.count <= LineParser.maxKeyBytes && k.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                || b == 0x2E || b == 0x5F || b == 0x2D || b == 0x3A || b == 0x2F
        }
        guard ok else { throw ValidationError("--key '\(k)' must be 1-\(LineParser.maxKeyBytes) bytes of [A-Za-z0-9._:/-] (or auto)") }
    }

    /// A number of milliseconds from `low` to 365 days.
    static func checkMs(_ v: Int, _ what: String, low: Int = 0, high: Int = LineParser.maxDelayMs) throws {
        guard v >= low, v <= high else { throw ValidationError("\(what) must be from \(low) to \(high) (ms); got \(v)") }
    }

    /// A comma list of queue names, each checked, duplicates dropped (order kept).
    static func queueList(_ s: String) throws -> [String] {
        var out: [String] = []
        for part in s.split(separator: ",", omittingEmptySubsequences: false).map(String.init) {
            try checkQueue(part, "--queue: queue")
            if !out.contains(part) { out.append(part) }
        }
        guard out.count <= 64 else { throw ValidationError("--queue lists at most 64 queues") }
        return out
    }

    /// A payload must be one protocol line (whose trailing \r the server drops).
    static func checkPayload(_ p: String) throws {
        guard !p.isEmpty else { throw ValidationError("the payload is empty") }
        guard !p.utf8.contains(0x0A), p.utf8.last != 0x0D else {
            throw ValidationError("a payload cannot hold a line break (use - to put one task per stdin line)")
        }
    }
}
