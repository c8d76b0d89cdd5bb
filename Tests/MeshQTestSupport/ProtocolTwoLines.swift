// ProtocolTwoLines: reading protocol-2 replies in tests: a JOB line's fields
// and one key of a STATS line.

/// `JOB <id> <lamport> <queue> <deliveries> <payload>`, or nil for anything else.
public func jobFields(_ line: String) -> (id: UInt64, queue: String, deliveries: Int, payload: String)? {
    let p = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: false).map(String.init)
    guard p.count == 6, p[0] == "JOB", let id = UInt64(p[1]), let d = Int(p[4]) else { return nil }
    return (id, p[3], d, p[5])
}

/// The value of `key=` in a STATS (or STATUS) line.
public func statsField(_ line: String, _ key: String) -> String? {
    line.split(separator: " ").first { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
}
