// Draining a single node's queue in tests: DEQUEUE and ACK until EMPTY.
import MeshQClient

extension LineClient {
    /// Dequeues and acks every ready task; returns payloads in delivery order.
    /// Any reply but TASK/EMPTY, or an ACK not answered OK, is an error.
    public func drainAcking() throws -> [String] {
        var out: [String] = []
        while true {
            let r = try request("DEQUEUE")
            if r == "EMPTY" { return out }
            let p = r.split(separator: " ", maxSplits: 3).map(String.init)
            guard p.count == 4, p[0] == "TASK" else { throw HarnessError("unexpected \(r)") }
            out.append(p[3])
            guard try request("ACK \(p[1])").hasPrefix("OK ") else { throw HarnessError("ack failed") }
        }
    }
}
