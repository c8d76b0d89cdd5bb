// ConfigWriter: the one writer of meshq.conf (docs/configuration.md) for the CLI's
// local clusters and the tests' harnesses: a `[cluster]` section, then one
// `[node.N]` section per node with its peer and client addresses and data
// directory. Settings beyond those are passed through as `key = value` lines,
// unchecked, so a test can also write a broken file on purpose; meshqd's
// ConfigParser is the judge of what is valid.

public struct ConfigWriter: Sendable {
    public struct Node: Sendable {
        public var id: Int
        public var peer: String
        public var client: String
        public var dataDir: String
        /// More `key = value` lines for this node's section.
        public var extra: [String]

        public init(id: Int, peer: String, client: String, dataDir: String, extra: [String] = []) {
            self.id = id
            self.peer = peer
            self.client = client
            self.dataDir = dataDir
            self.extra = extra
        }

        /// A node on 127.0.0.1 with the given ports.
        public static func loopback(id: Int, peerPort: Int, clientPort: Int, dataDir: String,
                                    extra: [String] = []) -> Node {
            Node(id: id, peer: "127.0.0.1:\(peerPort)", client: "127.0.0.1:\(clientPort)", dataDir: dataDir, extra: extra)
        }
    }

    /// Comment lines written first (without the `# `).
    public var comment: [String]
    /// `key = value` lines of the `[cluster]` section.
    public var cluster: [String]
    public var nodes: [Node]

    public init(comment: [String] = [], cluster: [String] = [], nodes: [Node]) {
        self.comment = comment
        self.cluster = cluster
        self.nodes = nodes
    }

    /// Splits a block of `key = value` lines (a test's multi-line string) into lines.
    public static func lines(_ block: String) -> [String] {
        block.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
    }

    public var text: String {
        var out = comment.map { "# \($0)\n" }.joined()
        out += "[cluster]\n"
        for line in cluster { out += line + "\n" }
        for n in nodes {
            out += "\n[node.\(n.id)]\npeer = \(n.peer)\nclient = \(n.client)\ndata_dir = \(n.dataDir)\n"
            for line in n.extra { out += line + "\n" }
        }
        return out
    }
}
