// MeshQ: the root command. Exit statuses (meshq(1)): 0 success,
// 1 the operation failed, 2 bad usage.
import ArgumentParser

struct MeshQ: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meshq",
        abstract: "Client for a meshq cluster: produce, consume, inspect, benchmark, run locally.",
        subcommands: [PutCommand.self, WorkCommand.self, StatsCommand.self, PeekCommand.self, KickCommand.self, PauseCommand.self,
                      EnqueueCommand.self, StatusCommand.self, BenchCommand.self, ClusterCommand.self]
    )

    /// ArgumentParser exits 64 on usage errors; the contract says 2.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure || code.rawValue == 64 {
                FileOut.stderr(fullMessage(for: error))
                Self.exit(withError: ExitCode(2))
            }
            Self.exit(withError: error)
        }
    }
}

/// Operation failures (exit 1) with a message for stderr.
struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

extension ParsableCommand {
    /// Prints the failure and exits 1.
    func fail(_ message: String) -> ExitCode {
        FileOut.stderr("meshq: \(message)")
        return ExitCode(1)
    }
}
