// LineFramer: cuts a connection's byte stream into lines. A line longer than
// the limit is not buffered: its bytes are dropped as they arrive, up to its
// "\n", and then reported once as `.tooLarge`, so one oversize line costs the
// server no memory and the connection goes on with the next line.

public struct LineFramer {
    public enum Next: Equatable {
        /// A complete line: the range in `buffer`, without "\n" and a trailing "\r".
        case line(Range<Int>)
        case tooLarge
        case needMore
    }

    public var maxLineBytes: Int
    public private(set) var buffer: [UInt8] = []
    private var start = 0
    private var scanFrom = 0
    private var discarding = false

    public init(maxLineBytes: Int) {
        self.maxLineBytes = maxLineBytes
    }

    /// Bytes held, waiting for the end of their line.
    public var bufferedBytes: Int { buffer.count - start }

    /// Adds received bytes; the caller appends straight into `buffer`.
    public mutating func withBuffer<R>(_ body: (inout [UInt8]) -> R) -> R {
        compact()
        return body(&buffer)
    }

    public mutating func append(_ bytes: some Sequence<UInt8>) {
        compact()
        buffer.append(contentsOf: bytes)
    }

    public mutating func next() -> Next {
        while true {
            let nl = buffer[scanFrom...].firstIndex(of: 0x0A)
            if discarding {
                guard let nl else {
                    // Drop the oversize line's bytes as they come.
                    start = buffer.count
                    scanFrom = buffer.count
                    return .needMore
                }
                discarding = false
                start = nl + 1
                scanFrom = start
                return .tooLarge
            }
            guard let nl else {
                scanFrom = buffer.count
                if buffer.count - start > maxLineBytes + 1 {
                    discarding = true
                    continue
                }
                return .needMore
            }
            var end = nl
            if end > start, buffer[end - 1] == 0x0D { end -= 1 }
            let lineStart = start
            start = nl + 1
            scanFrom = start
            if end - lineStart > maxLineBytes { return .tooLarge }
            return .line(lineStart..<end)
        }
    }

    private mutating func compact() {
        guard start > 0 else { return }
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 1 << 20)
        } else if start >= 4096 && start * 2 >= buffer.count {
            buffer.removeSubrange(0..<start)
        } else {
            return
        }
        scanFrom -= start
        start = 0
    }
}
