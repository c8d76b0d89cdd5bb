// ConfigError: what is wrong with the file, where: file, line and key, so an
// operator can go straight to it.

public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var key: String?
    public var message: String

    public init(file: String, line: Int, key: String?, message: String) {
        self.file = file
        self.line = line
        self.key = key
        self.message = message
    }

    public var description: String {
        if let key { return "\(file):\(line): key '\(key)': \(message)" }
        return "\(file):\(line): \(message)"
    }
}
