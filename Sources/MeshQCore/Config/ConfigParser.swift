// ConfigParser: the INI dialect of docs/configuration.md. `#` and `;` start a comment
// at the start of a line or after a space or tab (so `a;b` is a value, `a ;b`
// is `a` and a comment). Every error names the file, the line and the key;
// duplicates are reported at the second occurrence, a missing key at its
// section header. Parsing is pure: the caller reads the file, and hands in
// `readFile` for the secrets kept in files of their own (`cluster_secret_file`,
// `client_token_file`: an absolute path, read at every load, trailing newlines
// stripped; exclusive with the inline key).

/// Reads a file a config key names: its text, or why it cannot be read.
public typealias ConfigFileReader = (String) -> Result<String, ConfigFileReadError>

public struct ConfigFileReadError: Error, Sendable {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
}

public enum ConfigParser {
    public static func parse(_ text: String, file: String,
                             readFile: ConfigFileReader? = nil) throws(ConfigError) -> MeshQConfig {
        var p = Parser(file: file)
        try p.run(text)
        return try p.finish(readFile: readFile)
    }
}

private struct Parser {
    enum Section: Equatable { case none, cluster, node(Int), queue(String) }

    struct RawQueue {
        var name: String
        var line: Int
        var values: [String: (String, Int)] = [:]
    }

    struct RawNode {
        var id: Int
        var line: Int
        var values: [String: (String, Int)] = [:]
    }

    let file: String
    var section = Section.none
    var seenSections: [String: Int] = [:]
    var clusterValues: [String: (String, Int)] = [:]
    var nodes: [RawNode] = []
    var queues: [RawQueue] = []
    var lastLine = 0

    static let clusterKeys: Set<String> = [
        "heartbeat_interval_ms", "leader_timeout_ms", "election_timeout_ms", "ack_timeout_ms",
        "commit_timeout_ms", "time_sync_interval_ms", "route_ttl", "max_payload_bytes", "fsync",
        "max_connections", "max_memory_mb", "log_level", "cluster_secret", "client_token",
        "auth_timeout_ms", "idle_timeout_ms",
        "cluster_secret_file", "client_token_file", "max_deliveries", "dedup_window_ms",
    ]
    static let queueKeys: Set<String> = ["ack_timeout_ms", "max_deliveries", "dead_letter", "dedup_window_ms"]
    static let nodeKeys: Set<String> = ["peer", "client", "listen_peer", "listen_client", "data_dir", "metrics"]
    // TLS (docs/configuration.md), parsed in `tls(for:)` below.
    static let tlsClusterKeys: Set<String> = ["tls_ca"]
    static let tlsNodeKeys: Set<String> = ["tls_cert", "tls_key", "client_tls", "client_plain"]

    init(file: String) { self.file = file }

    func error(_ line: Int, _ key: String?, _ message: String) -> ConfigError {
        ConfigError(file: file, line: line, key: key, message: message)
    }

    static func stripComment(_ line: Substring) -> Substring {
        var prevBlank = true
        var i = line.startIndex
        while i < line.endIndex {
            let ch = line[i]
            if (ch == "#" || ch == ";") && prevBlank { return line[..<i] }
            prevBlank = ch == " " || ch == "\t"
            i = line.index(after: i)
        }
        return line
    }

    static func trim(_ s: Substring) -> Substring {
        var s = s
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s = s.dropLast() }
        return s
    }

    mutating func run(_ text: String) throws(ConfigError) {
        var lineNo = 0
        // "\r\n" is one Character in Swift: split on both forms.
        for raw in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            lineNo += 1
            let line = Parser.trim(Parser.stripComment(raw))
            if line.isEmpty { continue }
            lastLine = lineNo
            if line.hasPrefix("[") {
                guard line.hasSuffix("]") else { throw error(lineNo, nil, "malformed section header '\(line)'") }
                let name = String(Parser.trim(line.dropFirst().dropLast()))
                try openSection(name, line: lineNo)
                continue
            }
            guard let eq = line.firstIndex(of: "=") else {
                throw error(lineNo, nil, "expected 'key = value' or a [section], got '\(line)'")
            }
            let key = String(Parser.trim(line[..<eq]))
            let value = String(Parser.trim(line[line.index(after: eq)...]))
            guard !key.isEmpty else { throw error(lineNo, nil, "a line with '=' but no key") }
            switch section {
            case .none:
                throw error(lineNo, key, "key outside any section (put it under [cluster] or [node.N])")
            case .cluster:
                guard Parser.clusterKeys.contains(key) || Parser.tlsClusterKeys.contains(key) else { throw error(lineNo, key, "unknown key in [cluster]") }
                if clusterValues[key] != nil {
                    throw error(lineNo, key, "duplicate key (first set on line \(clusterValues[key]!.1))")
                }
                clusterValues[key] = (value, lineNo)
            case .node(let id):
                guard Parser.nodeKeys.contains(key) || Parser.tlsNodeKeys.contains(key) else { throw error(lineNo, key, "unknown key in [node.\(id)]") }
                let i = nodes.count - 1
                if let first = nodes[i].values[key] {
                    throw error(lineNo, key, "duplicate key (first set on line \(first.1))")
                }
                nodes[i].values[key] = (value, lineNo)
            case .queue(let name):
                guard Parser.queueKeys.contains(key) else { throw error(lineNo, key, "unknown key in [queue.\(name)]") }
                let i = queues.count - 1
                if let first = queues[i].values[key] {
                    throw error(lineNo, key, "duplicate key (first set on line \(first.1))")
                }
                queues[i].values[key] = (value, lineNo)
            }
        }
    }

    mutating func openSection(_ name: String, line: Int) throws(ConfigError) {
        if let first = seenSections[name] {
            throw error(line, nil, "duplicate section [\(name)] (first on line \(first))")
        }
        if name == "cluster" {
            section = .cluster
        } else if name.hasPrefix("node.") {
            let digits = name.dropFirst(5)
            guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), digits.first != "0",
                  let id = Int(digits) else {
                throw error(line, nil, "bad section [\(name)]: the node id must be a positive integer, as in [node.1]")
            }
            section = .node(id)
            nodes.append(RawNode(id: id, line: line))
        } else if name.hasPrefix("queue.") {
            let q = String(name.dropFirst(6))
            guard LineParser.isValidQueueName(q) else {
                throw error(line, nil, "bad section [\(name)]: a queue name is 1-64 bytes of [A-Za-z0-9._-]")
            }
            section = .queue(q)
            queues.append(RawQueue(name: q, line: line))
        } else {
            throw error(line, nil, "unknown section [\(name)] (expected [cluster], [node.N] or [queue.NAME])")
        }
        seenSections[name] = line
    }

    func int(_ key: String, _ range: ClosedRange<Int>, _ what: String,
             in values: [String: (String, Int)]? = nil) throws(ConfigError) -> Int? {
        guard let (v, line) = (values ?? clusterValues)[key] else { return nil }
        guard v.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(v), range.contains(n) else {
            throw error(line, key, "expected \(what) from \(range.lowerBound) to \(range.upperBound), got '\(v)'")
        }
        return n
    }

    /// The value of `key`, or of `key_file` read through `readFile`.
    func secret(_ key: String, readFile: ConfigFileReader?) throws(ConfigError) -> String? {
        let fileKey = key + "_file"
        guard let (path, line) = clusterValues[fileKey] else { return clusterValues[key]?.0 }
        if let (_, inline) = clusterValues[key] {
            throw error(line, fileKey, "set both \(key) (line \(inline)) and \(fileKey): keep one")
        }
        guard path.hasPrefix("/") else { throw error(line, fileKey, "must be an absolute path, got '\(path)'") }
        guard let readFile else { throw error(line, fileKey, "cannot read '\(path)' here") }
        switch readFile(path) {
        case .failure(let e):
            throw error(line, fileKey, "cannot read '\(path)': \(e.reason)")
        case .success(var text):
            while let last = text.last, last == "\n" || last == "\r\n" || last == "\r" { text.removeLast() }
            guard !text.isEmpty else { throw error(line, fileKey, "'\(path)' is empty") }
            guard !text.contains(where: { $0 == "\n" || $0 == "\r\n" }) else {
                throw error(line, fileKey, "'\(path)' holds more than one line")
            }
            return text
        }
    }

    func finish(readFile: ConfigFileReader?) throws(ConfigError) -> MeshQConfig {
        var c = ClusterSettings()
        let ms = 1...86_400_000
        let msWhat = "an integer number of milliseconds"
        if let v = try int("heartbeat_interval_ms", ms, msWhat) { c.heartbeatIntervalMs = v }
        if let v = try int("leader_timeout_ms", ms, msWhat) { c.leaderTimeoutMs = v }
        if let v = try int("election_timeout_ms", ms, msWhat) { c.electionTimeoutMs = v }
        if let v = try int("ack_timeout_ms", ms, msWhat) { c.ackTimeoutMs = v }
        if let v = try int("commit_timeout_ms", ms, msWhat) { c.commitTimeoutMs = v }
        if let v = try int("time_sync_interval_ms", ms, msWhat) { c.timeSyncIntervalMs = v }
        if let v = try int("route_ttl", 1...255, "an integer") { c.routeTTL = v }
        if let v = try int("max_payload_bytes", 1...67_108_864, "an integer") { c.maxPayloadBytes = v }
        if let v = try int("max_connections", 1...1_000_000, "an integer") { c.maxConnections = v }
        if let v = try int("max_memory_mb", 1...1_048_576, "an integer") { c.maxMemoryMB = v }
        let msOrOff = "an integer number of milliseconds (0 = off)"
        if let v = try int("auth_timeout_ms", 0...86_400_000, msOrOff) { c.authTimeoutMs = v }
        if let v = try int("idle_timeout_ms", 0...86_400_000, msOrOff) { c.idleTimeoutMs = v }
        let deliveries = 0...1_000_000
        let deliveriesWhat = "an integer number of deliveries (0 = unlimited)"
        let window = 1...(30 * 86_400_000)
        if let v = try int("max_deliveries", deliveries, deliveriesWhat) { c.maxDeliveries = v }
        if let v = try int("dedup_window_ms", window, msWhat) { c.dedupWindowMs = v }
        for q in queues {
            var s = QueueSettings(line: q.line)
            s.ackTimeoutMs = try int("ack_timeout_ms", ms, msWhat, in: q.values)
            s.maxDeliveries = try int("max_deliveries", deliveries, deliveriesWhat, in: q.values)
            s.dedupWindowMs = try int("dedup_window_ms", window, msWhat, in: q.values)
            if let (v, line) = q.values["dead_letter"] {
                guard LineParser.isValidQueueName(v) else {
                    throw error(line, "dead_letter", "expected a queue name of 1-64 bytes of [A-Za-z0-9._-], got '\(v)'")
                }
                guard v != q.name else { throw error(line, "dead_letter", "a queue cannot be its own dead-letter queue") }
                s.deadLetter = v
            }
            c.queues[q.name] = s
        }
        if let (v, line) = clusterValues["fsync"] {
            guard let m = FsyncMode(rawValue: v.lowercased()) else {
                throw error(line, "fsync", "expected always or never, got '\(v)'")
            }
            c.fsync = m
        }
        if let (v, line) = clusterValues["log_level"] {
            guard let l = LogLevel(rawValue: v.lowercased()) else {
                throw error(line, "log_level", "expected debug, info, notice, warn or error, got '\(v)'")
            }
            c.logLevel = l
        }
        for key in ["cluster_secret", "client_token"] {
            if let (v, line) = clusterValues[key], v.isEmpty {
                throw error(line, key, "must not be empty (comment the line out to disable)")
            }
            guard let v = try secret(key, readFile: readFile) else { continue }
            if key == "cluster_secret" { c.clusterSecret = v } else { c.clientToken = v }
        }
        if c.heartbeatIntervalMs >= c.leaderTimeoutMs {
            let at = clusterValues["leader_timeout_ms"] != nil ? "leader_timeout_ms" : "heartbeat_interval_ms"
            throw error(clusterValues[at]?.1 ?? 1, at,
                        "heartbeat_interval_ms (\(c.heartbeatIntervalMs)) must be less than leader_timeout_ms (\(c.leaderTimeoutMs)), or followers start elections under a live leader")
        }

        guard !nodes.isEmpty else { throw error(max(1, lastLine), nil, "no [node.N] section: a cluster needs at least one node") }
        var out: [NodeConfig] = []
        var peers: [HostPort: Int] = [:]
        var clients: [HostPort: Int] = [:]
        for n in nodes {
            func addr(_ key: String) throws(ConfigError) -> HostPort? {
                guard let (v, line) = n.values[key] else { return nil }
                guard let hp = HostPort.parse(v) else {
                    throw error(line, key, "expected host:port (or [ipv6]:port) with a port from 1 to 65535, got '\(v)'")
                }
                return hp
            }
            guard let peer = try addr("peer") else { throw error(n.line, "peer", "missing in [node.\(n.id)]") }
            guard let client = try addr("client") else { throw error(n.line, "client", "missing in [node.\(n.id)]") }
            if let other = peers[peer] {
                throw error(n.values["peer"]!.1, "peer", "\(peer) is already the peer address of node \(other)")
            }
            if let other = clients[client] {
                throw error(n.values["client"]!.1, "client", "\(client) is already the client address of node \(other)")
            }
            peers[peer] = n.id
            clients[client] = n.id
            var dataDir = "/var/lib/meshq/\(n.id)"
            if let (v, line) = n.values["data_dir"] {
                guard v.hasPrefix("/") else { throw error(line, "data_dir", "must be an absolute path, got '\(v)'") }
                dataDir = v
            }
            var nc = NodeConfig(id: n.id, peer: peer, client: client,
                                listenPeer: try addr("listen_peer") ?? peer,
                                listenClient: try addr("listen_client") ?? client,
                                dataDir: dataDir, metrics: try addr("metrics"), line: n.line)
            nc.tls = try tls(for: n, clientTLS: try addr("client_tls"))
            if let t = nc.tls.clientTLS {
                if let other = clients[t] {
                    throw error(n.values["client_tls"]!.1, "client_tls", "\(t) is already the client address of node \(other)")
                }
                clients[t] = n.id
            }
            out.append(nc)
        }
        return MeshQConfig(file: file, cluster: c, nodes: out.sorted { $0.id < $1.id })
    }

    // MARK: TLS (docs/configuration.md)

    /// The TLS keys of one node. tls_ca (cluster-wide) turns on mutual TLS
    /// for peer links, so then every node needs tls_cert and tls_key; a
    /// certificate needs its key and the reverse; client_tls needs both; and
    /// client_plain = off needs client_tls (or no client port would be left).
    func tls(for n: RawNode, clientTLS: HostPort?) throws(ConfigError) -> TLSConfig {
        var t = TLSConfig()
        func file(_ key: String, _ values: [String: (String, Int)]) throws(ConfigError) -> TLSConfig.File? {
            guard let (v, line) = values[key] else { return nil }
            guard !v.isEmpty else { throw error(line, key, "must name a PEM file (comment the line out to disable)") }
            return TLSConfig.File(path: v, line: line, key: key)
        }
        t.ca = try file("tls_ca", clusterValues)
        t.cert = try file("tls_cert", n.values)
        t.key = try file("tls_key", n.values)
        t.clientTLS = clientTLS
        if let c = t.cert, t.key == nil {
            throw error(c.line, "tls_cert", "needs tls_key in [node.\(n.id)] (the certificate's private key)")
        }
        if let k = t.key, t.cert == nil {
            throw error(k.line, "tls_key", "needs tls_cert in [node.\(n.id)] (the certificate for this key)")
        }
        if let ca = t.ca, t.cert == nil {
            throw error(n.line, "tls_cert", "missing in [node.\(n.id)]: tls_ca (line \(ca.line)) turns on mutual TLS for peer links, so every node needs tls_cert and tls_key")
        }
        if clientTLS != nil, t.cert == nil {
            throw error(n.values["client_tls"]!.1, "client_tls", "needs tls_cert and tls_key in [node.\(n.id)]")
        }
        if let (v, line) = n.values["client_plain"] {
            switch v.lowercased() {
            case "on", "yes", "true": t.clientPlain = true
            case "off", "no", "false": t.clientPlain = false
            default: throw error(line, "client_plain", "expected on or off, got '\(v)'")
            }
            if !t.clientPlain && clientTLS == nil {
                throw error(line, "client_plain", "off needs client_tls in [node.\(n.id)], or the node would have no client port")
            }
        }
        return t
    }
}
