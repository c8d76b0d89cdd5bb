// SystemdNotifier: sd_notify(3) without libsystemd. One datagram per message to
// $NOTIFY_SOCKET (a path, or "@name" in the abstract namespace). When systemd
// did not start us the variable is unset and there is no notifier.
import Glibc
import MeshQNode

final class SystemdNotifier {
    private let fd: Int32
    private let path: [UInt8]

    /// nil when not run under systemd's notify protocol.
    init?(environment: [String: String]) {
        guard let socket = environment["NOTIFY_SOCKET"], !socket.isEmpty,
              socket.hasPrefix("/") || socket.hasPrefix("@") else { return nil }
        var bytes = Array(socket.utf8)
        if bytes[0] == UInt8(ascii: "@") { bytes[0] = 0 }
        guard bytes.count < 108 else { return nil }
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        self.fd = fd
        self.path = bytes
    }

    deinit { Glibc.close(fd) }

    /// The watchdog period systemd asked for, if any ($WATCHDOG_USEC).
    static func watchdogIntervalMs(environment: [String: String]) -> Int? {
        guard let usec = environment["WATCHDOG_USEC"].flatMap({ Int($0) }), usec > 0 else { return nil }
        if let pid = environment["WATCHDOG_PID"].flatMap({ Int32($0) }), pid != getpid() { return nil }
        return max(1, usec / 1000)
    }

    @discardableResult
    func notify(_ message: String) -> Bool {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.enumerated() { raw[i] = b }
        }
        // Abstract names are not NUL-terminated: the length says where they end.
        let len = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + path.count + (path[0] == 0 ? 0 : 1))
        var msg = message
        let sent = msg.withUTF8 { body in
            withUnsafePointer(to: &addr) { ap in
                ap.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                    sendto(fd, body.baseAddress, body.count, Int32(MSG_NOSIGNAL), sa, len)
                }
            }
        }
        return sent >= 0
    }
}

extension SystemdNotifier {
    /// The sd_notify message for what the node reports: READY=1 once it has
    /// joined (leads or follows a leader), STATUS= with every change of role,
    /// leader or epoch, RELOADING=1 and READY=1 around a SIGHUP, STOPPING=1,
    /// WATCHDOG=1 from the loop.
    static func message(for notice: NodeNotice) -> String {
        switch notice {
        case .role(let s, let joined):
            let status = "STATUS=role=\(s.role) leader=\(s.leader.map(String.init) ?? "-") epoch=\(s.epoch)"
            return joined ? "READY=1\n" + status : status
        case .reloading: return "RELOADING=1"
        case .reloaded: return "READY=1"
        case .stopping: return "STOPPING=1"
        case .alive: return "WATCHDOG=1"
        }
    }

    /// The node's supervisor when systemd started us with $NOTIFY_SOCKET (nil
    /// otherwise): the watchdog is fed at half the period systemd asked for.
    static func supervisor(environment: [String: String]) -> Supervisor? {
        guard let notifier = SystemdNotifier(environment: environment) else { return nil }
        let heartbeat = watchdogIntervalMs(environment: environment).map { max(1, $0 / 2) }
        return Supervisor(heartbeatMs: heartbeat) { notifier.notify(message(for: $0)) }
    }
}
