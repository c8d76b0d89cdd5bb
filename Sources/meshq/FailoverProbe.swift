// FailoverProbe: how long a crash of the leader interrupts service, as a
// client sees it. A client writes through a follower, one ENQUEUE at a time;
// the leader is killed with SIGKILL; the time from the kill to the first OK
// committed by the new leader is one sample. The killed node is restarted
// and the cluster settles (the highest node leads again) before the next
// sample.
import Foundation
import Glibc
import MeshQClient
import Reactor

struct FailoverProbe {
    let cluster: LocalCluster

    struct Sample {
        var ms: Double
        var oldLeader: Int
        var newLeader: Int
    }

    private func leader() -> Int? {
        for id in 1...cluster.count {
            if let s = cluster.status(id), s["role"] == "leader", s["leader"] == "\(id)" { return id }
        }
        return nil
    }

    /// Waits until the highest node leads and every node names it.
    private func settled(timeoutSeconds: Double = 60) -> Int? {
        let end = Date().addingTimeInterval(timeoutSeconds)
        while Date() < end {
            if let l = leader(), l == cluster.count,
               (1...cluster.count).allSatisfy({ cluster.status($0)?["leader"] == "\(l)" }) { return l }
            usleep(20_000)
        }
        return nil
    }

    func run(rounds: Int, log: (String) -> Void) throws -> [Sample] {
        var samples: [Sample] = []
        for round in 1...rounds {
            guard let old = settled() else { throw Failure("no settled leader before round \(round)") }
            let via = 1   // a follower: the highest node leads
            let c = try LineClient(host: "127.0.0.1", port: UInt16(cluster.clientPort(via)), timeoutMs: 30_000)
            for i in 0..<20 {   // warm: the path through the follower works
                guard try c.request("ENQUEUE warm-\(round)-\(i)").hasPrefix("OK ") else { throw Failure("no OK before the kill") }
            }
            cluster.kill9(old)
            let t0 = Clock.monotonicNs()
            var n = 0
            while true {
                n += 1
                let r = try c.request("ENQUEUE after-\(round)-\(n)")
                if r.hasPrefix("OK ") { break }
                guard r.hasPrefix("ERR NOLEADER") || r.hasPrefix("ERR NOQUORUM") else { throw Failure("unexpected reply: \(r)") }
                guard Clock.monotonicNs() - t0 < 60_000_000_000 else { throw Failure("no OK within 60 s of the kill") }
            }
            let ms = Double(Clock.monotonicNs() - t0) / 1e6
            let now = (1...cluster.count).first { cluster.status($0)?["role"] == "leader" } ?? 0
            samples.append(Sample(ms: ms, oldLeader: old, newLeader: now))
            log(String(format: "round %d: killed leader %d, first OK from leader %d after %.0f ms", round, old, now, ms))
            c.close()
            try cluster.restart(old)
        }
        return samples
    }
}
