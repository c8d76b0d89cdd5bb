// Logger: one logfmt line per event on stderr, one write(2) per line so lines
// from a busy node never interleave. Under journald ($JOURNAL_STREAM names our
// stderr) each line starts with a <N> syslog priority, so `journalctl -p`
// filters by level.
import Glibc
import MeshQCore
import SystemPackage

public final class Logger {
    public var level: LogLevel
    public let journald: Bool
    private var line: [UInt8] = []

    public init(level: LogLevel, environment: [String: String]) {
        self.level = level
        self.journald = Logger.stderrIsJournal(environment["JOURNAL_STREAM"])
    }

    /// JOURNAL_STREAM is "dev:inode" of the stream journald gave us; a child
    /// whose stderr was redirected elsewhere inherits the variable, so compare.
    static func stderrIsJournal(_ value: String?) -> Bool {
        guard let value else { return false }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let dev = UInt64(parts[0]), let ino = UInt64(parts[1]) else { return false }
        var st = stat()
        guard fstat(STDERR_FILENO, &st) == 0 else { return false }
        return UInt64(st.st_dev) == dev && UInt64(st.st_ino) == ino
    }

    public func enabled(_ l: LogLevel) -> Bool { l >= level }

    public func emit(_ e: LogEvent) {
        guard enabled(e.level) else { return }
        write(e.level, e.name, e.fields)
    }

    public func log(_ l: LogLevel, _ event: String, _ fields: [(String, String)] = []) {
        guard enabled(l) else { return }
        write(l, event, fields)
    }

    private func write(_ l: LogLevel, _ event: String, _ fields: [(String, String)]) {
        line.removeAll(keepingCapacity: true)
        if journald {
            line.append(contentsOf: "<\(l.syslogPriority)>".utf8)
        }
        line.append(contentsOf: "level=\(l.rawValue) event=".utf8)
        line.append(contentsOf: event.utf8)
        for (k, v) in fields {
            line.append(0x20)
            line.append(contentsOf: k.utf8)
            line.append(0x3D)
            Logger.appendValue(v, to: &line)
        }
        line.append(0x0A)
        _ = try? FileDescriptor.standardError.writeAll(line)
    }

    /// logfmt: bare when safe, else double-quoted with \" \\ \n escaped.
    static func appendValue(_ v: String, to out: inout [UInt8]) {
        let needsQuotes = v.isEmpty || v.utf8.contains { $0 <= 0x20 || $0 == 0x22 || $0 == 0x3D || $0 == 0x5C || $0 == 0x7F }
        guard needsQuotes else {
            out.append(contentsOf: v.utf8)
            return
        }
        out.append(0x22)
        for b in v.utf8 {
            switch b {
            case 0x22: out.append(contentsOf: [0x5C, 0x22])
            case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, 0x6E])
            case 0x0D: out.append(contentsOf: [0x5C, 0x72])
            case 0..<0x20, 0x7F: out.append(0x3F)
            default: out.append(b)
            }
        }
        out.append(0x22)
    }
}
