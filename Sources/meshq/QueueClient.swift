// QueueClient: one logical connection to "the cluster": it connects to the
// first node that answers, says HELLO with its Lamport clock, and on a failed
// connection (or a reply meaning "not here, try elsewhere") moves to the next
// node and retries the command there.
import Glibc
import MeshQClient
import MeshQCore
import Reactor

final class QueueClient {
    let nodes: [HostPort]
    let clientId: String
    private(set) var lamport = LamportTracker()
    private var conn: LineClient?
    private var current = 0
    var timeoutMs = 10_000
    /// How long a command keeps moving from node to node while the cluster
    /// has no leader (a failover takes well under a second with the defaults).
    var retryForMs = 30_000

    init(nodes: [HostPort], clientId: String) {
        self.nodes = nodes
        self.clientId = clientId
    }

    var connectedNode: HostPort? { conn == nil ? nil : nodes[current] }

    private func connect() throws -> LineClient {
        if let conn { return conn }
        var errors: [String] = []
        for step in 0..<nodes.count {
            let i = (current + step) % nodes.count
            let n = nodes[i]
            do {
                let c = try LineClient(host: n.host, port: n.port, timeoutMs: timeoutMs)
                let hello = try c.request("HELLO \(clientId) \(lamport.tickForSend())")
                guard hello.hasPrefix("HELLO ") else {
                    errors.append("\(n): \(hello)")
                    continue
                }
                lamport.observe(reply: hello)
                conn = c
                current = i
                return c
            } catch {
                errors.append("\(n): \(error)")
            }
        }
        throw Failure("no node reachable (\(errors.joined(separator: "; ")))")
    }

    private func dropConnection() {
        conn?.close()
        conn = nil
        current = (current + 1) % nodes.count
    }

    /// Sends one command; retries on the next node when a node fails or has
    /// no leader, until `retryForMs` has passed. Returns the reply line.
    func request(_ line: String, retryOn codes: Set<String> = ["ERR NOLEADER", "ERR NOQUORUM"]) throws -> String {
        var last = ""
        let deadline = Clock.monotonicMs() + Int64(retryForMs)
        var attempt = 0
        while attempt < nodes.count || Clock.monotonicMs() < deadline {
            if attempt >= nodes.count && attempt % nodes.count == 0 { usleep(100_000) }   // a full round refused: let the election run
            attempt += 1
            // Every node was tried and none answers: the cluster is down, say so now.
            let c = try connect()
            do {
                let r = try c.request(line)
                lamport.observe(reply: r)
                if codes.contains(where: { r.hasPrefix($0) }) {
                    last = r
                    dropConnection()
                    continue
                }
                return r
            } catch {
                last = "\(error)"
                dropConnection()
            }
        }
        throw Failure(last)
    }

    /// Pipelines many commands on one node; replies come back in order.
    func pipeline(_ lines: [String]) throws -> [String] {
        let c = try connect()
        try c.send(lines.map { $0 + "\n" }.joined())
        var out: [String] = []
        out.reserveCapacity(lines.count)
        for _ in lines {
            let r = try c.readLine()
            lamport.observe(reply: r)
            out.append(r)
        }
        return out
    }

    func close() {
        if let c = conn { _ = try? c.request("QUIT") }
        conn?.close()
        conn = nil
    }
}
