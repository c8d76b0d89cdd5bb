// MeshQD: meshqd's command line. The flags, --help, and the exit statuses of
// man/meshqd.8: 0 a clean stop or a good --check, 1 a runtime failure, 2 bad
// usage or a bad configuration file (named with its line and key).
import ArgumentParser
import Foundation
import Glibc
import MeshQNode

struct MeshQD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meshqd",
        abstract: "One node of a meshq cluster, in the foreground.",
        discussion: """
            Exit status: 0 on a clean stop (SIGTERM, SIGINT) or a good --check; 1 on a \
            runtime failure (logged); 2 on bad usage or a bad configuration file.
            """
    )

    @Option(name: [.customLong("config"), .customShort("c")],
            help: ArgumentHelp("The cluster configuration.", valueName: "FILE"))
    var config = "/etc/meshq/meshq.conf"

    @Option(help: ArgumentHelp("Which [node.N] of the file this process runs (may be omitted when the file has one node).",
                               valueName: "N"),
            transform: MeshQD.nodeID)
    var id: Int?

    @Flag(help: "Validate the file, print a summary and exit 0 (or 2); binds nothing, creates no directory.")
    var check = false

    @Flag(help: """
        Start even if the log or mailbox log is corrupt: keep the records before the damaged write, \
        move the rest aside (<log>.corrupt-at-<offset>).
        """)
    var repair = false

    static func nodeID(_ s: String) throws -> Int {
        guard let n = Int(s), n > 0 else { throw ValidationError("node ids are positive integers") }
        return n
    }

    /// ArgumentParser exits 64 (EX_USAGE) on usage errors; meshqd's contract says 2.
    static func main() {
        let command: MeshQD
        do {
            command = try parse()
        } catch {
            if exitCode(for: error) == .validationFailure {
                stderr(fullMessage(for: error))
                Glibc.exit(2)
            }
            exit(withError: error)   // --help: the help on stdout, exit 0
        }
        Glibc.exit(command.start(environment: ProcessInfo.processInfo.environment))
    }

    /// Checks the config, then (without --check) runs the node; the exit status.
    func start(environment: [String: String]) -> Int32 {
        let node: Daemon.Node
        switch Daemon.node(configPath: config, id: id) {
        case .success(let n): node = n
        case .failure(let e):
            Self.stderr("meshqd: \(e.message)")
            return 2
        }
        if check {
            print(node.summary)
            return 0
        }
        let logger = Logger(level: node.config.cluster.logLevel, environment: environment)
        return Daemon.serve(node, repair: repair, logger: logger, environment: environment,
                            supervisor: SystemdNotifier.supervisor(environment: environment))
    }

    static func stderr(_ s: String) {
        FileHandle.standardError.write(Data((s.hasSuffix("\n") ? s : s + "\n").utf8))
    }
}
