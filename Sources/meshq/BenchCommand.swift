// meshq bench: enqueue then drain a fixed number of tasks and report
// throughput and latency per phase. With --local it starts (and stops) its own
// cluster, so the figures in the README come from one command.
import ArgumentParser
import Foundation
import Glibc
import MeshQClient
import MeshQCore
import Reactor

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench", abstract: "Measure enqueue and dequeue+ack throughput and latency.")

    @OptionGroup var nodeOptions: NodeOptions
    @Option(help: "Start a local cluster of N nodes for the run (instead of --nodes).") var local: Int?
    @Option(help: "Tasks to enqueue and then drain.") var messages: Int = 200_000
    @Option(help: "Client connections.") var connections: Int = 64
    @Option(help: "Requests in flight per connection.") var pipeline: Int = 16
    @Option(name: .customLong("payload-bytes"), help: "Payload size.") var payloadBytes: Int = 100
    @Flag(name: .customLong("no-fsync"), help: "With --local: fsync = never.") var noFsync = false
    @Flag(help: "Print JSON instead of tables.") var json = false
    @Flag(help: "Print a progress line every second.") var progress = false
    @Option(help: "With --local: the meshqd binary.") var meshqd: String?
    @Option(name: .customLong("local-tls"),
            help: ArgumentHelp("With --local: mutual TLS between the nodes and TLS client ports, from DIR/ca.pem, DIR/node.pem and DIR/node.key (scripts/tls-certs.sh DIR writes them); the bench connects over TLS.", valueName: "dir"))
    var localTLS: String?
    @Option(help: "With --local 3 or more: kill -9 the leader this many times and report how long each failover kept a client waiting, instead of the throughput phases.")
    var failover: Int?
    @Option(name: .customLong("put-options"),
            help: ArgumentHelp("Enqueue with `PUT default OPTS` instead of ENQUEUE (e.g. pri=7,key=auto; key=auto gives each message its own key).", valueName: "opts"))
    var putOptions: String?
    @Flag(help: "With --local: fill node 1 with --messages ready tasks, report its resident memory per task, then restart it and time how long until it serves again (instead of the drain phase).")
    var restart = false

    func validate() throws {
        guard messages >= 1, connections >= 1, pipeline >= 1 else {
            throw ValidationError("--messages, --connections and --pipeline must be at least 1")
        }
        guard payloadBytes >= 1, payloadBytes <= 1 << 20 else { throw ValidationError("--payload-bytes must be from 1 to 1048576") }
        if let local, !(1...9).contains(local) { throw ValidationError("--local takes 1 to 9 nodes") }
        if localTLS != nil && local == nil { throw ValidationError("--local-tls needs --local") }
        if let failover {
            guard failover >= 1 else { throw ValidationError("--failover must be at least 1") }
            guard let local, local >= 3 else { throw ValidationError("--failover needs --local 3 or more (a majority must survive the kill)") }
        }
        if let o = putOptions {
            let probe = o.replacingOccurrences(of: "key=auto", with: "key=k")
            guard case .command(.put(_, let parsed, _)) = LineParser.parse(ArraySlice(Array("PUT q \(probe) x".utf8))) else {
                throw ValidationError("--put-options: not PUT options (pri=N, delay=MS, key=K or key=auto, comma-separated)")
            }
            if parsed.delayMs > 0 && !restart {
                throw ValidationError("--put-options delay= needs --restart (the drain would wait for the delay)")
            }
        }
        if restart {
            guard local != nil else { throw ValidationError("--restart needs --local (it restarts a node it started)") }
            guard failover == nil else { throw ValidationError("--restart and --failover are separate runs") }
        }
    }

    func run() throws {
        var cluster: LocalCluster?
        let nodes: [HostPort]
        var tls = try nodeOptions.tlsContext()
        if let local {
            let dir = FileManager.default.temporaryDirectory
                .appendingPathComponent("meshq-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
            // Ports away from a `meshq cluster` a user may be running, and
            // below the kernel's ephemeral range (32768-), where an outbound
            // connection could hold one when a killed node restarts.
            let c = LocalCluster(dir: dir, count: local, basePort: 17_000 + Int(getpid() % 1_500) * 10,
                                 meshqd: meshqd ?? LocalCluster.defaultMeshqd())
            c.forwardLogs = false
            if let localTLS {
                c.tlsDir = localTLS
                do {
                    tls = try TLSContext(certificate: nil, privateKey: nil, trustedCA: localTLS + "/ca.pem")
                } catch {
                    throw ValidationError("--local-tls: \(error)")
                }
            }
            try c.writeConfig(fsync: noFsync ? "never" : "always")
            try c.start()
            cluster = c
            guard c.waitForLeader(timeoutSeconds: 60) else {
                c.stop()
                throw fail("the local cluster elected no leader within 60 s")
            }
            nodes = (1...local).map { HostPort(host: "127.0.0.1", port: UInt16(localTLS == nil ? c.clientPort($0) : c.clientTLSPort($0))) }
        } else {
            nodes = try nodeOptions.parsed()
        }
        defer {
            if let cluster {
                cluster.stop()
                try? FileManager.default.removeItem(atPath: cluster.dir)
            }
        }
        if let failover, let cluster {
            let samples: [FailoverProbe.Sample]
            do {
                samples = try FailoverProbe(cluster: cluster).run(rounds: failover) { FileOut.stderr($0) }
            } catch {
                throw fail("\(error)")
            }
            let ms = samples.map(\.ms).sorted()
            let avg = ms.reduce(0, +) / Double(ms.count)
            print("| Failover (kill -9 of the leader, first OK after it) | Samples | Avg (ms) | Min (ms) | p50 (ms) | Max (ms) |")
            print("|---|---:|---:|---:|---:|---:|")
            print(String(format: "| client writing through node 1, default timings | %d | %.0f | %.0f | %.0f | %.0f |",
                         ms.count, avg, ms.first!, ms[ms.count / 2], ms.last!))
            return
        }

        let runner = BenchRunner(nodes: nodes, connections: connections, pipeline: pipeline,
                                 messages: messages, payloadBytes: payloadBytes, tls: tls)
        runner.putOptions = putOptions
        if progress || isatty(STDERR_FILENO) != 0 { runner.progress = { FileOut.stderr($0) } }
        do {
            try runner.connect()
        } catch {
            throw fail("\(error)")
        }
        if restart, let cluster {
            return try runRestart(cluster: cluster, runner: runner, nodes: nodes, tls: tls)
        }
        let enq = runner.runEnqueue()
        var phases = [enq]
        if runner.abortReason == nil { phases.append(runner.runDrain()) }
        runner.close()
        if !runner.foreignIds.isEmpty, let n = nodes.first,
           let c = try? LineClient(host: n.host, port: n.port, timeoutMs: 10_000, tls: tls) {
            _ = try? c.send(runner.foreignIds.map { "NACK \($0)\n" }.joined())
            for _ in runner.foreignIds { _ = try? c.readLine() }
        }

        let (missing, duplicated) = runner.verification()
        var verified: String
        if missing.isEmpty && duplicated == 0 && runner.abortReason == nil {
            verified = "verified: \(messages) enqueued, \(messages) drained exactly once"
        } else {
            verified = "NOT verified: \(missing.count) of \(messages) never drained"
            if !missing.isEmpty { verified += " (e.g. #\(missing.prefix(5).map(String.init).joined(separator: ", #")))" }
            verified += ", \(duplicated) drained more than once"
            if let why = runner.abortReason { verified += "; stopped: \(why)" }
        }
        if runner.foreign > 0 { verified += " (\(runner.foreign) tasks of other producers were given back)" }
        let report = BenchReport(phases: phases, connections: connections, pipeline: pipeline, payloadBytes: payloadBytes,
                                 nodes: local, fsync: local == nil ? "as configured" : (noFsync ? "never" : "always"),
                                 verified: verified)
        print(json ? report.json : report.text)
        let failed = phases.contains { $0.errors > 0 } || !verified.hasPrefix("verified")
        if failed { throw ExitCode(1) }
    }

    /// --restart: the enqueue phase, then RestartProbe on node 1.
    private func runRestart(cluster: LocalCluster, runner: BenchRunner, nodes: [HostPort], tls: TLSContext?) throws {
        let probe = RestartProbe(cluster: cluster, node: 1)
        let idle: Int
        do {
            idle = try probe.idleRSS()
        } catch {
            throw fail("\(error)")
        }
        let enq = runner.runEnqueue()
        runner.close()
        let report = BenchReport(phases: [enq], connections: connections, pipeline: pipeline, payloadBytes: payloadBytes,
                                 nodes: local, fsync: noFsync ? "never" : "always",
                                 verified: "the drain is left out: the backlog stays for the restart")
        print(report.text)
        guard enq.errors == 0, runner.abortReason == nil else {
            throw fail("the fill failed: \(enq.firstError ?? runner.abortReason ?? "?")")
        }
        // Delayed tasks are not ready: one plain task more is what the
        // restarted node must serve first.
        let delayed = putOptions?.contains("delay=") == true
        if delayed {
            guard let n = nodes.first, let c = try? LineClient(host: n.host, port: n.port, timeoutMs: 30_000, tls: tls),
                  (try? c.request("ENQUEUE ready-after-restart"))?.hasPrefix("OK ") == true else {
                throw fail("the ready task after the delayed fill was not enqueued")
            }
        }
        let r: RestartProbe.Result
        do {
            r = try probe.run(tasks: messages + (delayed ? 1 : 0), ready: delayed ? 1 : messages,
                              payloadBytes: payloadBytes, rssIdleKiB: idle)
        } catch {
            throw fail("\(error)")
        }
        print("")
        print(RestartProbe.table(r))
    }
}
