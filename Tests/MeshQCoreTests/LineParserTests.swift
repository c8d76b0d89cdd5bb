import Testing
@testable import MeshQCore

private func parse(_ s: String) -> ParsedLine { LineParser.parse(ArraySlice(Array(s.utf8))) }

@Suite struct LineParserTests {
    @Test func everyVerbParses() {
        #expect(parse("HELLO worker-1") == .command(.hello(clientId: "worker-1", lamport: nil)))
        #expect(parse("HELLO w 42") == .command(.hello(clientId: "w", lamport: 42)))
        #expect(parse("ENQUEUE hello world") == .command(.enqueue(payload: Array("hello world".utf8))))
        #expect(parse("DEQUEUE") == .command(.dequeue(waitMs: nil)))
        #expect(parse("DEQUEUE 250") == .command(.dequeue(waitMs: 250)))
        #expect(parse("ACK 18446744073709551615") == .command(.ack(taskId: UInt64.max)))
        #expect(parse("NACK 7") == .command(.nack(taskId: 7)))
        #expect(parse("STATUS") == .command(.status))
        #expect(parse("AUTH s3cret") == .command(.auth(token: "s3cret")))
        #expect(parse("PING") == .command(.ping))
        #expect(parse("HELP") == .command(.help))
        #expect(parse("QUIT") == .command(.quit))
    }

    @Test func verbsAreCaseInsensitive() {
        #expect(parse("ping") == .command(.ping))
        #expect(parse("eNqUeUe x") == .command(.enqueue(payload: [0x78])))
        #expect(parse("dequeue 5") == .command(.dequeue(waitMs: 5)))
    }

    @Test func enqueueKeepsPayloadBytesExactly() {
        // Everything after the one separator is payload: spaces, tabs, UTF-8, binary-ish bytes.
        #expect(parse("ENQUEUE  two leading") == .command(.enqueue(payload: Array(" two leading".utf8))))
        #expect(parse("ENQUEUE a\tb  ") == .command(.enqueue(payload: Array("a\tb  ".utf8))))
        #expect(parse("ENQUEUE héllo ✓") == .command(.enqueue(payload: Array("héllo ✓".utf8))))
        let raw: [UInt8] = Array("ENQUEUE ".utf8) + [0x00, 0xFF, 0x01]
        #expect(LineParser.parse(ArraySlice(raw)) == .command(.enqueue(payload: [0x00, 0xFF, 0x01])))
    }

    @Test func blankLinesHaveNoReply() {
        #expect(parse("") == .blank)
        #expect(parse("   ") == .blank)
        #expect(parse(" \t ") == .blank)
    }

    @Test func badArgumentsAreBadarg() {
        for line in ["ENQUEUE", "ENQUEUE ", "ACK", "ACK abc", "ACK -1", "ACK 1 2", "ACK 18446744073709551616",
                     "NACK", "NACK x", "DEQUEUE -5", "DEQUEUE abc", "DEQUEUE 1 2", "DEQUEUE 86400001",
                     "HELLO", "HELLO a b c", "HELLO a notanumber", "AUTH", "PING extra", "STATUS now", "QUIT x"] {
            guard case .error(.badarg, let text) = parse(line) else {
                Issue.record("'\(line)' should be BADARG, got \(parse(line))")
                continue
            }
            #expect(!text.isEmpty)
        }
    }

    @Test func unknownVerbIsBadcmd() {
        guard case .error(.badcmd, let text) = parse("FROB x") else {
            Issue.record("expected BADCMD")
            return
        }
        #expect(text.contains("FROB"))
        // Control bytes in an unknown verb never reach the reply line raw.
        guard case .error(.badcmd, let t2) = LineParser.parse(ArraySlice([0x01, 0x02, 0x41])) else {
            Issue.record("expected BADCMD")
            return
        }
        #expect(!t2.utf8.contains(0x01))
    }

    @Test func leadingWhitespaceBeforeVerbIsTolerated() {
        #expect(parse("  PING") == .command(.ping))
    }
}

@Suite struct LineFramerTests {
    private func lines(_ f: inout LineFramer) -> [String] {
        var out: [String] = []
        while true {
            switch f.next() {
            case .line(let r): out.append(String(decoding: f.buffer[r], as: UTF8.self))
            case .tooLarge: out.append("<TOOLARGE>")
            case .needMore: return out
            }
        }
    }

    @Test func splitsLinesAndDropsCR() {
        var f = LineFramer(maxLineBytes: 100)
        f.append(Array("PING\r\nENQUEUE a\nPART".utf8))
        #expect(lines(&f) == ["PING", "ENQUEUE a"])
        f.append(Array("IAL\n".utf8))
        #expect(lines(&f) == ["PARTIAL"])
    }

    @Test func byteAtATimeDelivery() {
        var f = LineFramer(maxLineBytes: 100)
        var got: [String] = []
        for b in "A\nBB\r\nCCC\n".utf8 {
            f.append([b])
            got += lines(&f)
        }
        #expect(got == ["A", "BB", "CCC"])
    }

    @Test func oversizeLineIsDiscardedThenReportedOnce() {
        var f = LineFramer(maxLineBytes: 10)
        f.append(Array("PING\n".utf8) + Array(repeating: UInt8(ascii: "x"), count: 50))
        #expect(lines(&f) == ["PING"])
        // Bytes of the oversize line are not kept while waiting for its end.
        #expect(f.bufferedBytes == 0)
        f.append(Array(repeating: UInt8(ascii: "y"), count: 1000))
        #expect(lines(&f) == [])
        #expect(f.bufferedBytes == 0)
        f.append(Array("zz\nPING\n".utf8))
        #expect(lines(&f) == ["<TOOLARGE>", "PING"])
    }

    @Test func oversizeLineArrivingWhole() {
        var f = LineFramer(maxLineBytes: 10)
        f.append(Array("0123456789\n01234567890\nok\n".utf8))
        #expect(lines(&f) == ["0123456789", "<TOOLARGE>", "ok"])
    }

    @Test func exactLimitWithCRLFIsAccepted() {
        var f = LineFramer(maxLineBytes: 4)
        f.append(Array("abcd\r".utf8))
        #expect(lines(&f) == [])
        f.append(Array("\n".utf8))
        #expect(lines(&f) == ["abcd"])
    }
}
