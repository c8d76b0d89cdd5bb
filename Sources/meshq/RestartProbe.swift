// RestartProbe: what a big backlog costs a node, for `meshq bench --restart`.
// The queue is filled by the bench's enqueue phase (N ready tasks, or N
// delayed ones and one ready task with --put-options delay=); then:
//  - memory: node 1's VmRSS (/proc/<pid>/status) before the fill and after
//    it, divided by N, minus the payload size, is the resident cost of one
//    queued task over its payload;
//  - restart: node 1 is stopped with SIGTERM and started again on its data;
//    the time from the exec to the first STATUS that answers with the whole
//    backlog ready, and to the first DEQUEUE that answers TASK (that task is
//    NACKed back), is how long a restart keeps clients waiting. The VmRSS of
//    the restarted node (the state rebuilt from disk, and whatever recovery
//    left allocated) is reported too.
// Every sample polls against a deadline; nothing here sleeps a fixed time to
// let something happen.
import Foundation
import Glibc
import MeshQClient
import Reactor

struct RestartProbe {
    let cluster: LocalCluster
    let node: Int

    struct Result {
        var tasks: Int
        var payloadBytes: Int
        var rssIdleKiB: Int
        var rssFullKiB: Int
        var rssRestartedKiB: Int
        var dataDirBytes: Int
        var stopSeconds: Double
        var statusSeconds: Double
        var dequeueSeconds: Double

        var bytesPerTaskOverPayload: Double {
            Double((rssFullKiB - rssIdleKiB) * 1024) / Double(max(tasks, 1)) - Double(payloadBytes)
        }
        var restartedBytesPerTaskOverPayload: Double {
            Double((rssRestartedKiB - rssIdleKiB) * 1024) / Double(max(tasks, 1)) - Double(payloadBytes)
        }
    }

    /// VmRSS of a process in KiB, nil when it cannot be read.
    static func rssKiB(pid: Int32) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        }
        return nil
    }

    /// Bytes of the regular files under `path`.
    static func diskBytes(_ path: String) -> Int {
        guard let walk = FileManager.default.enumerator(atPath: path) else { return 0 }
        var total = 0
        for case let f as String in walk {
            if let a = try? FileManager.default.attributesOfItem(atPath: path + "/" + f),
               a[.type] as? FileAttributeType == .typeRegular, let n = a[.size] as? Int { total += n }
        }
        return total
    }

    func idleRSS() throws -> Int {
        guard let kib = RestartProbe.rssKiB(pid: cluster.pid(node)) else { throw Failure("cannot read VmRSS of node \(node)") }
        return kib
    }

    /// Runs after the fill: measures memory, restarts the node and times it.
    func run(tasks: Int, ready: Int, payloadBytes: Int, rssIdleKiB: Int, timeoutSeconds: Double = 120) throws -> Result {
        // The fill's replies are all in, so its records are durable; the node
        // may still be trimming its window or compacting: wait for VmRSS to settle.
        var full = try idleRSS()
        let settleEnd = Date().addingTimeInterval(10)
        while Date() < settleEnd {
            usleep(200_000)
            let now = try idleRSS()
            if abs(now - full) < 256 { full = now; break }
            full = now
        }
        guard let s = cluster.status(node), s["ready"] == "\(ready)", s["tasks"] == "\(tasks)" else {
            throw Failure("node \(node) does not report ready=\(ready) tasks=\(tasks) after the fill: \(cluster.status(node) ?? [:])")
        }
        let t0 = Clock.monotonicNs()
        cluster.stopNode(node)
        let stopped = Double(Clock.monotonicNs() - t0) / 1e9
        let disk = RestartProbe.diskBytes(cluster.dataDir(node))

        let exec = Clock.monotonicNs()
        try cluster.restart(node)
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        var statusAt: UInt64?
        var dequeueAt: UInt64?
        let port = UInt16(cluster.clientPort(node))
        while dequeueAt == nil {
            guard Date() < deadline else { throw Failure("node \(node) did not serve within \(Int(timeoutSeconds)) s of its restart") }
            guard cluster.isRunning(node) else { throw Failure("node \(node) exited during its restart") }
            guard let c = try? LineClient(host: "127.0.0.1", port: port, timeoutMs: 30_000) else {
                usleep(2_000)
                continue
            }
            if statusAt == nil {
                guard let line = try? c.request("STATUS") else { continue }
                let f = StatusLine.fields(line) ?? [:]
                guard f["role"] == "leader" || cluster.count > 1, f["ready"] == "\(ready)", f["tasks"] == "\(tasks)" else {
                    usleep(2_000)
                    continue
                }
                statusAt = Clock.monotonicNs()
            }
            guard let r = try? c.request("DEQUEUE") else { continue }
            if r.hasPrefix("TASK ") {
                dequeueAt = Clock.monotonicNs()
                let id = r.split(separator: " ")[1]
                _ = try? c.request("NACK \(id)")
            } else {
                usleep(2_000)
            }
        }
        guard let restarted = RestartProbe.rssKiB(pid: cluster.pid(node)) else { throw Failure("cannot read VmRSS of node \(node)") }
        return Result(tasks: tasks, payloadBytes: payloadBytes, rssIdleKiB: rssIdleKiB, rssFullKiB: full,
                      rssRestartedKiB: restarted, dataDirBytes: disk, stopSeconds: stopped,
                      statusSeconds: Double(statusAt! - exec) / 1e9, dequeueSeconds: Double(dequeueAt! - exec) / 1e9)
    }

    static func table(_ r: Result) -> String {
        let mib = { (kib: Int) in String(format: "%.1f", Double(kib) / 1024) }
        return """
        | Restart with a backlog | Tasks | Payload (B) | data_dir (MiB) | SIGTERM to exit (s) | exec to STATUS (s) | exec to first TASK (s) |
        |---|---:|---:|---:|---:|---:|---:|
        | node 1 | \(r.tasks) | \(r.payloadBytes) | \(String(format: "%.1f", Double(r.dataDirBytes) / 1_048_576)) | \
        \(String(format: "%.2f", r.stopSeconds)) | \(String(format: "%.2f", r.statusSeconds)) | \(String(format: "%.2f", r.dequeueSeconds)) |

        | Resident memory (VmRSS) | Idle (MiB) | With the backlog (MiB) | Per task over the payload (B) | After the restart (MiB) | Per task over the payload, restarted (B) |
        |---|---:|---:|---:|---:|---:|
        | node 1 | \(mib(r.rssIdleKiB)) | \(mib(r.rssFullKiB)) | \(String(format: "%.0f", r.bytesPerTaskOverPayload)) | \
        \(mib(r.rssRestartedKiB)) | \(String(format: "%.0f", r.restartedBytesPerTaskOverPayload)) |
        """
    }
}
