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

/// Protocol 2's verbs, and every bad argument they can meet.
@Suite struct LineParserProtocolTwoTests {
    @Test func protocolTwoVerbsParse() {
        #expect(parse("PUT jobs - hello  world") == .command(.put(queue: "jobs", options: PutOptions(), payload: Array("hello  world".utf8))))
        #expect(parse("put a.b_c-1 pri=0,delay=500,key=order:1/x p")
            == .command(.put(queue: "a.b_c-1", options: PutOptions(priority: 0, delayMs: 500, key: "order:1/x"), payload: [0x70])))
        #expect(parse("PUT q pri=4294967295 x") == .command(.put(queue: "q", options: PutOptions(priority: UInt32.max), payload: [0x78])))
        #expect(parse("TAKE a,b,a 250") == .command(.take(queues: ["a", "b"], waitMs: 250)))
        #expect(parse("TAKE a") == .command(.take(queues: ["a"], waitMs: nil)))
        #expect(parse("TOUCH 5") == .command(.touch(taskId: 5, ms: nil)))
        #expect(parse("TOUCH 5 60000") == .command(.touch(taskId: 5, ms: 60_000)))
        #expect(parse("NACK 5 1000") == .command(.nack(taskId: 5, delayMs: 1_000)))
        #expect(parse("BURY 5") == .command(.bury(taskId: 5)))
        #expect(parse("KICK a.dead") == .command(.kick(queue: "a.dead", count: nil)))
        #expect(parse("KICK a.dead 3") == .command(.kick(queue: "a.dead", count: 3)))
        #expect(parse("PAUSE a 0") == .command(.pause(queue: "a", ms: 0)))
        #expect(parse("STATS") == .command(.stats(queue: nil)))
        #expect(parse("STATS a") == .command(.stats(queue: "a")))
        #expect(parse("PEEK a") == .command(.peek(queue: "a")))
    }

    @Test func badProtocolTwoArgumentsAreBadargWithAReason() {
        let long = String(repeating: "k", count: 129)
        let q65 = String(repeating: "q", count: 65)
        for line in ["PUT", "PUT q", "PUT q -", "PUT q - ", "PUT bad/name - x", "PUT \(q65) - x", "PUT q pri=abc x",
                     "PUT q pri=-1 x", "PUT q pri=4294967296 x", "PUT q delay=-5 x", "PUT q key=\(long) x",
                     "PUT q key= x", "PUT q key=a*b x", "PUT q color=red x", "PUT q pri=1,pri=2 x", "PUT q pri x",
                     "TAKE", "TAKE a,,b", "TAKE a b c", "TAKE a -1", "TAKE a 86400001", "TOUCH x", "TOUCH 1 0",
                     "NACK 1 -3", "NACK 1 2 3", "BURY", "BURY a", "KICK", "KICK a -1", "PAUSE a", "PAUSE a x",
                     "PAUSE b@d 5", "STATS a b", "STATS #", "PEEK", "PEEK a b"] {
            guard case .error(.badarg, let text) = parse(line) else {
                Issue.record("\(line): \(parse(line))")
                continue
            }
            #expect(!text.isEmpty, "\(line)")
        }
    }
}
