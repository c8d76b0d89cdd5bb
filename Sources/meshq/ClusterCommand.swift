// meshq cluster: a local N-node cluster in the foreground; Ctrl-C stops it.
import ArgumentParser
import Foundation
import Reactor

struct ClusterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cluster", abstract: "Run a local N-node cluster in the foreground.")

    @Option(help: "How many nodes.") var nodes: Int = 3
    @Option(help: "Directory for the config and data (default: a new temporary one).") var dir: String?
    @Option(name: .customLong("base-port"), help: "Client ports are base+1..base+N, peer ports base+101..") var basePort: Int = 7000
    @Option(help: "The meshqd binary.") var meshqd: String?
    @Option(help: "always | never") var fsync: String = "always"

    func validate() throws {
        guard (1...99).contains(nodes) else { throw ValidationError("--nodes must be from 1 to 99") }
        guard (1...65_000).contains(basePort) else { throw ValidationError("--base-port must be from 1 to 65000") }
        guard ["always", "never"].contains(fsync) else { throw ValidationError("--fsync is always or never") }
    }

    func run() throws {
        let dir = self.dir ?? FileManager.default.temporaryDirectory
            .appendingPathComponent("meshq-cluster-\(ProcessInfo.processInfo.processIdentifier)").path
        let cluster = LocalCluster(dir: dir, count: nodes, basePort: basePort, meshqd: meshqd ?? LocalCluster.defaultMeshqd())
        let done = DispatchSemaphore(value: 0)
        let stopping = StopFlag()
        cluster.onChildExit = { id, status in
            if !stopping.requested { FileOut.stderr("meshq: node \(id) exited with status \(status)") }
        }
        try cluster.writeConfig(fsync: fsync)
        try cluster.start()
        if cluster.waitForLeader(timeoutSeconds: 30) {
            FileOut.stderr("meshq: \(nodes)-node cluster up; config \(cluster.configPath)")
            FileOut.stderr("meshq: try  printf 'ENQUEUE hi\\nDEQUEUE\\n' | nc -q1 127.0.0.1 \(cluster.clientPort(1))   (Ctrl-C stops)")
        } else {
            FileOut.stderr("meshq: no node reports a leader yet (see the logs above); nodes keep running (Ctrl-C stops)")
        }
        DispatchQueue.global().async {
            while !stopping.requested && cluster.children.contains(where: { $0.isRunning }) { usleep(100_000) }
            done.signal()
        }
        done.wait()
        cluster.stop()
        FileOut.stderr("meshq: cluster stopped")
    }
}
