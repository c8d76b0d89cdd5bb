// StatusLine: the one reader of the STATUS reply (docs/protocol.md) for the CLI and the
// tests. The reply is `STATUS k=v k=v ...`; the fields come back as a
// dictionary, keyed by name, so a reader never depends on their position and
// new keys appended by later versions are carried along. A word without `=`
// is ignored; a value keeps everything after its first `=`.

public enum StatusLine {
    /// The fields of a `STATUS ...` line, or nil when the line is anything else
    /// (an `ERR` reply, say).
    public static func fields(_ line: String) -> [String: String]? {
        guard line == "STATUS" || line.hasPrefix("STATUS ") else { return nil }
        var out: [String: String] = [:]
        for word in line.split(separator: " ").dropFirst() {
            guard let eq = word.firstIndex(of: "=") else { continue }
            out[String(word[..<eq])] = String(word[word.index(after: eq)...])
        }
        return out
    }
}
