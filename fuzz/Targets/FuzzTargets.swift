// FuzzTargets: the bodies of the libFuzzer targets (`make fuzz`), one per
// parser that reads bytes from outside the process. Each feeds arbitrary bytes
// through the real parser and checks the invariants its callers rely on; any
// violation traps (preconditionFailure), which libFuzzer reports as a crash.
// The same functions replay the seed corpus in the unit tests (FuzzCorpusTests),
// so a crash once found stays a regression test.
//
// Invariant: a parser never traps on input; it returns a value or an error.

import MeshQCore
import MeshQStorage

public enum FuzzTargets {
    /// The targets by name (MESHQ_FUZZ_TARGET, the corpus directory names).
    public enum Target: String, CaseIterable, Sendable {
        case lines, peer, config, storage

        public func run(_ data: [UInt8]) {
            switch self {
            case .lines: FuzzTargets.lines(data)
            case .peer: FuzzTargets.peerFrames(data)
            case .config: FuzzTargets.config(data)
            case .storage: FuzzTargets.storage(data)
            }
        }
    }

    /// Client line protocol: the byte stream is cut by LineFramer (fed in
    /// chunks whose sizes come from the input itself), every line is parsed.
    /// Lines never hold "\n", never exceed the limit, and every error reply
    /// names a code and is one line.
    public static func lines(_ data: [UInt8]) {
        guard let first = data.first else { return }
        let maxLine = 8 + Int(first) * 4
        var framer = LineFramer(maxLineBytes: maxLine)
        var rest = data.dropFirst()
        while !rest.isEmpty {
            let chunk = 1 + Int(rest.first!) % 97
            framer.append(rest.prefix(chunk))
            rest = rest.dropFirst(chunk)
            loop: while true {
                switch framer.next() {
                case .needMore: break loop
                case .tooLarge: continue
                case .line(let range):
                    let line = framer.buffer[range]
                    check(!line.contains(0x0A), "a line holds a newline")
                    check(line.count <= maxLine, "a line longer than the limit")
                    if case .error(_, let text) = LineParser.parse(line) {
                        check(!text.utf8.contains(0x0A), "an error text spans lines")
                    }
                }
            }
            check(framer.bufferedBytes <= maxLine + 1 + 97, "the framer buffers past the limit")
        }
    }

    /// Peer port: the stream is cut by PeerFrameReader, every frame decoded;
    /// a decoded envelope encodes back to a frame that decodes to itself.
    public static func peerFrames(_ data: [UInt8]) {
        var reader = PeerFrameReader()
        var rest = data[...]
        while !rest.isEmpty {
            let chunk = 1 + Int(rest.first!) % 251
            reader.append(Array(rest.prefix(chunk)))
            rest = rest.dropFirst(chunk)
            while let next = reader.next() {
                guard case .success(let frame) = next else { return }  // a bad length poisons the stream
                roundTrip(frame)
            }
        }
        // Also the whole input as one frame body: most inputs never frame.
        roundTrip(data)
    }

    private static func roundTrip(_ frame: [UInt8]) {
        guard case .success(let envelope) = PeerEnvelope.decode(frame: frame) else { return }
        let again = PeerEnvelope.decode(frame: Array(envelope.framed().dropFirst(4)))
        check(again == .success(envelope), "an envelope does not survive encode/decode")
    }

    /// The INI config: any text parses to a config or to an error that names
    /// the file and a line inside it.
    public static func config(_ data: [UInt8]) {
        let text = String(decoding: data, as: UTF8.self)
        do {
            // Files named by *_file keys read as their own path, or fail to.
            let config = try ConfigParser.parse(text, file: "fuzz.conf") { path in
                path.count % 3 == 0 ? .failure(ConfigFileReadError("no such file")) : .success(path + "\n")
            }
            check(!config.nodes.isEmpty, "a config without nodes was accepted")
        } catch {
            let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).count
            check(error.file == "fuzz.conf", "an error that does not name the file")
            check(error.line >= 1 && error.line <= max(1, lines), "an error naming no line of the file")
        }
    }

    /// What a node reads back from disk: log records, queue snapshots and the
    /// framing of a whole log file with its recovery verdict.
    public static func storage(_ data: [UInt8]) {
        if let record = LogRecord.decode(data) {
            check(LogRecord.decode(record.encoded()) == record, "a log record does not survive encode/decode")
        }
        if let snapshot = QueueSnapshot.decode(data) {
            check(QueueSnapshot.decode(snapshot.encoded()) == snapshot, "a snapshot does not survive encode/decode")
        }
        let parsed = LogFrames.parse(data)
        check(parsed.end >= 0 && parsed.end <= data.count, "recovery cuts outside the file")
        for r in parsed.ranges {
            check(r.lowerBound >= 0 && r.upperBound <= data.count, "a record range outside the file")
            _ = LogRecord.decode(data, range: r)
        }
        if case .corrupt(let offset, let writeStart)? = parsed.damage {
            check(writeStart <= offset && offset < data.count, "corruption reported outside the file")
        }
    }

    public static func check(_ ok: Bool, _ what: @autoclosure () -> String) {
        if !ok { preconditionFailure("fuzz invariant: \(what())") }
    }
}
