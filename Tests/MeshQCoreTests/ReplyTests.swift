import Testing
@testable import MeshQCore

@Suite struct ReplyTests {
    @Test func linesMatchTheProtocol() {
        #expect(Reply.ok(taskId: 1, lamport: 17).line == "OK 1 17\n")
        #expect(Reply.task(taskId: 12, lamport: 0, payload: Array("hi there".utf8)).line == "TASK 12 0 hi there\n")
        #expect(Reply.queued(ref: "2-5", lamport: 9).line == "QUEUED 2-5 9\n")
        #expect(Reply.empty.line == "EMPTY\n")
        #expect(Reply.hello(nodeId: 3, lamport: 981).line == "HELLO 3 981 meshq/2\n")
        #expect(Reply.pong.line == "PONG\n")
        #expect(Reply.bye.line == "BYE\n")
        #expect(Reply.plainOK.line == "OK\n")
        #expect(Reply.error(.notfound, "no task 5").line == "ERR NOTFOUND no task 5\n")
        #expect(Reply.help.line.hasPrefix("HELP HELLO"))
    }

    @Test func errorTextCannotSplitTheLine() {
        #expect(Reply.error(.badarg, "a\nb\rc").line == "ERR BADARG a b c\n")
    }

    @Test func decimalsRenderAtTheEdges() {
        for v: UInt64 in [0, 9, 10, 99, 100, 1_000_000, UInt64.max] {
            var out: [UInt8] = []
            appendDecimal(v, to: &out)
            #expect(String(decoding: out, as: UTF8.self) == String(v))
        }
    }

    @Test func statusKeysComeInContractOrder() {
        let s = StatusReport(id: 2, role: "follower", leader: 3, epoch: 4, lamport: 981, commit: 1200, ready: 10,
                             inflight: 2, mailbox: 0, peersUp: 2, offsetMs: 0.41, extra: [("tasks", "12")])
        #expect(s.line == "id=2 role=follower leader=3 epoch=4 lamport=981 commit=1200 ready=10 inflight=2 mailbox=0 peers_up=2 offset_ms=0.41 tasks=12")
        let none = StatusReport(id: 1, role: "candidate", leader: nil, epoch: 0, lamport: 0, commit: 0, ready: 0,
                                inflight: 0, mailbox: 0, peersUp: 0, offsetMs: -1.005, extra: [])
        #expect(none.line.contains("leader=- "))
        #expect(formatMs(0) == "0.00")
        #expect(formatMs(-0.5) == "-0.50")
    }
}
