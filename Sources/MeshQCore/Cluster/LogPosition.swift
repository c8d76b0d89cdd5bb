// LogPosition: how far a node's log goes, compared by (epoch, index): an
// entry from a later epoch wins over a longer log from an older one. Voters
// report it so a new leader knows whom to recover from.

public struct LogPosition: Comparable, Hashable, Sendable {
    public var epoch: UInt64
    public var index: UInt64

    public init(epoch: UInt64, index: UInt64) {
        self.epoch = epoch
        self.index = index
    }

    public static let zero = LogPosition(epoch: 0, index: 0)

    public static func < (a: LogPosition, b: LogPosition) -> Bool { (a.epoch, a.index) < (b.epoch, b.index) }
}
