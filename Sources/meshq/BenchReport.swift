// BenchReport: the tables of `meshq bench`, in the columns of the original
// Python project's README so the figures compare directly, or JSON.
import Foundation
import Histogram

struct BenchReport {
    var phases: [BenchRunner.PhaseResult]
    var connections: Int
    var pipeline: Int
    var payloadBytes: Int
    var nodes: Int?
    var fsync: String
    var verified: String

    static let header = "| Workload | Messages | Conc | Throughput (msg/s) | Avg (ms) | p50 (ms) | p90 (ms) | p95 (ms) | p99 (ms) |"

    private static func ms(_ us: Double) -> String { String(format: "%.2f", us / 1_000) }

    func row(_ p: BenchRunner.PhaseResult) -> String {
        let h = p.histogram
        let tput = p.seconds > 0 ? Double(p.messages) / p.seconds : 0
        let cells = [p.name, "\(p.messages)", "\(connections)x\(pipeline)", String(format: "%.0f", tput),
                     Self.ms(h.mean), Self.ms(Double(h.valueAtPercentile(50))), Self.ms(Double(h.valueAtPercentile(90))),
                     Self.ms(Double(h.valueAtPercentile(95))), Self.ms(Double(h.valueAtPercentile(99)))]
        return "| " + cells.joined(separator: " | ") + " |"
    }

    static func machine() -> String {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let mem = Double(ProcessInfo.processInfo.physicalMemory) / 1_073_741_824
        var uts = utsname()
        uname(&uts)
        let release = withUnsafeBytes(of: &uts.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return "\(cores) cores, \(String(format: "%.0f", mem)) GiB, Linux \(release)"
    }

    var text: String {
        var out = [Self.header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for p in phases { out.append(row(p)) }
        out.append("")
        out.append("\(payloadBytes)-byte payloads, \(nodes.map { "local \($0)-node cluster, " } ?? "")fsync=\(fsync); \(Self.machine())")
        for p in phases where p.errors > 0 || p.firstError != nil {
            out.append("\(p.name): \(p.errors) error replies; first: \(p.firstError ?? "-")")
        }
        out.append(verified)
        return out.joined(separator: "\n")
    }

    var json: String {
        let ph: [[String: Any]] = phases.map { p in
            let h = p.histogram
            return ["workload": p.name, "messages": p.messages, "seconds": p.seconds,
                    "throughput": p.seconds > 0 ? Double(p.messages) / p.seconds : 0,
                    "avg_ms": h.mean / 1_000, "p50_ms": Double(h.valueAtPercentile(50)) / 1_000,
                    "p90_ms": Double(h.valueAtPercentile(90)) / 1_000, "p95_ms": Double(h.valueAtPercentile(95)) / 1_000,
                    "p99_ms": Double(h.valueAtPercentile(99)) / 1_000, "errors": p.errors]
        }
        let obj: [String: Any] = ["phases": ph, "connections": connections, "pipeline": pipeline,
                                  "payload_bytes": payloadBytes, "nodes": nodes ?? 0, "fsync": fsync,
                                  "machine": Self.machine(), "verified": verified]
        let data = (try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}
