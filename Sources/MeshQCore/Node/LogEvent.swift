// LogEvent: a structured log line produced by protocol code. The node prints
// it as logfmt (`level=… event=… k=v …`); tests read the fields directly.

public struct LogEvent: Sendable, Equatable {
    public var level: LogLevel
    public var name: String
    public var fields: [(String, String)]

    public init(_ level: LogLevel, _ name: String, _ fields: [(String, String)] = []) {
        self.level = level
        self.name = name
        self.fields = fields
    }

    public func field(_ key: String) -> String? { fields.first { $0.0 == key }?.1 }

    public static func == (a: LogEvent, b: LogEvent) -> Bool {
        a.level == b.level && a.name == b.name && a.fields.map(\.0) == b.fields.map(\.0)
            && a.fields.map(\.1) == b.fields.map(\.1)
    }
}
