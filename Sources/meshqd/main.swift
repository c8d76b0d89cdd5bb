// meshqd: one node of a meshq cluster, in the foreground (systemd runs it so).
import Foundation
import MeshQNode

exit(Daemon.run(arguments: Array(CommandLine.arguments.dropFirst()),
                environment: ProcessInfo.processInfo.environment))
