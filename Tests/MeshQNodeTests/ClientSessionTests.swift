// ClientSession on a fake connection: replies leave in command order however
// the node orders its answers (pipelining), a connection's reads wait for its
// own writes, a blocking DEQUEUE holds the connection, and a client that does
// not read its replies (or floods input while blocked) stops being read past
// 4 MiB until it catches up.
import MeshQCore
@testable import MeshQNode
import Testing

@Suite struct ClientSessionTests {
    private func isEnqueue(_ c: ClientCommand) -> Bool { if case .enqueue = c { return true } else { return false } }
    private func isDequeue(_ c: ClientCommand) -> Bool { if case .dequeue = c { return true } else { return false } }

    @Test func repliesLeaveInCommandOrderWhateverOrderTheyAreReady() {
        let r = SessionRig()
        r.conn.receive("ENQUEUE a\nPING\nENQUEUE b\nPING\n")
        r.step()
        let enq = r.host.seqs(where: isEnqueue)
        #expect(enq.count == 2)
        #expect(r.conn.output == "", "PONG must wait for the ENQUEUE before it")
        r.session.fill(enq[1], .ok(taskId: 2, lamport: 9))
        r.host.endIteration()
        #expect(r.conn.output == "")
        r.session.fill(enq[0], .ok(taskId: 1, lamport: 8))
        r.host.endIteration()
        #expect(r.conn.outputLines == ["OK 1 8", "PONG", "OK 2 9", "PONG"])
    }

    @Test func thousandsOfPipelinedCommandsAnsweredInReverseStillLeaveInOrder() {
        let r = SessionRig()
        var text = ""
        for i in 0..<5_000 { text += i % 2 == 0 ? "ENQUEUE p\(i)\n" : "PING\n" }
        r.conn.receive(text)
        r.step()
        let enq = r.host.seqs(where: isEnqueue)
        #expect(enq.count == 2_500)
        for (n, seq) in enq.enumerated().reversed() { r.session.fill(seq, .ok(taskId: UInt64(n + 1), lamport: 1)) }
        r.host.endIteration()
        let want = (0..<5_000).map { $0 % 2 == 0 ? "OK \($0 / 2 + 1) 1" : "PONG" }
        #expect(r.conn.outputLines.map(String.init) == want)
    }

    @Test func aReadWaitsForTheConnectionsOwnEarlierWrites() {
        let r = SessionRig()
        r.conn.receive("ENQUEUE x\nDEQUEUE\nPING\n")
        r.step()
        #expect(r.host.submitted.count == 1, "DEQUEUE must not run before the ENQUEUE commits")
        r.session.fill(r.host.seqs(where: isEnqueue)[0], .ok(taskId: 1, lamport: 1))
        let deq = r.host.seqs(where: isDequeue)
        #expect(deq.count == 1)
        r.session.fill(deq[0], .task(taskId: 1, lamport: 2, payload: Array("x".utf8)))
        r.host.endIteration()
        #expect(r.conn.outputLines == ["OK 1 1", "TASK 1 2 x", "PONG"])
    }

    @Test func aBlockingDequeueHoldsTheConnectionUntilItIsAnswered() {
        let r = SessionRig()
        r.conn.receive("DEQUEUE 5000\nPING\nENQUEUE y\n")
        r.step()
        #expect(r.host.submitted.count == 1)
        #expect(r.conn.output == "")
        r.session.fill(r.host.seqs(where: isDequeue)[0], .empty)
        r.host.endIteration()
        #expect(r.conn.outputLines == ["EMPTY", "PONG"])
        #expect(r.host.seqs(where: isEnqueue).count == 1)
    }

    @Test func aLateOrRepeatedReplyIsIgnored() {
        let r = SessionRig()
        r.conn.receive("ENQUEUE a\n")
        r.step()
        let seq = r.host.seqs(where: isEnqueue)[0]
        r.session.fill(seq, .ok(taskId: 1, lamport: 1))
        r.session.fill(seq, .ok(taskId: 99, lamport: 1))
        r.host.endIteration()
        r.session.fill(seq, .ok(taskId: 98, lamport: 1))     // already written
        r.session.fill(seq + 5, .ok(taskId: 97, lamport: 1)) // never asked
        r.host.endIteration()
        #expect(r.conn.outputLines == ["OK 1 1"])
    }

    @Test func aClientThatDoesNotReadIsPausedPast4MiBOfOutputAndResumedWhenDrained() {
        let r = SessionRig()
        let payload = [UInt8](repeating: UInt8(ascii: "z"), count: 64 << 10)
        r.conn.receive(String(repeating: "DEQUEUE\n", count: 100))
        r.step()
        let deq = r.host.seqs(where: isDequeue)
        #expect(deq.count == 100)
        for (i, seq) in deq.enumerated() { r.session.fill(seq, .task(taskId: UInt64(i + 1), lamport: 1, payload: payload)) }
        r.host.endIteration()
        #expect(r.conn.pendingOutputBytes > ClientSession.backpressureBytes)
        #expect(r.conn.paused, "6.4 MiB unsent: reading must stop")

        r.conn.receive("PING\n")
        r.step()
        #expect(r.conn.unread == 5, "nothing is read while paused")

        r.drain()
        #expect(!r.conn.paused)
        r.step()
        #expect(r.conn.outputLines.last == "PONG")
        #expect(r.conn.outputLines.count == 101)
    }

    @Test func floodingInputWhileBlockedIsPausedPast4MiBAndResumesAfterTheAnswer() {
        let r = SessionRig()
        r.conn.drainsAtOnce = true
        r.conn.receive("DEQUEUE 60000\n")
        r.step()
        let line = "ENQUEUE " + String(repeating: "x", count: 1_015) + "\n"   // 1 KiB
        let chunk = String(repeating: line, count: 64)
        var sent = 0
        while !r.conn.paused && sent < 8 << 20 {
            r.conn.receive(chunk)
            sent += chunk.utf8.count
            r.step()
        }
        #expect(r.conn.paused, "input kept growing while the connection was blocked")
        #expect(sent > ClientSession.backpressureBytes && sent <= ClientSession.backpressureBytes + 2 * chunk.utf8.count)
        #expect(r.conn.output == "")

        r.session.fill(r.host.seqs(where: isDequeue)[0], .empty)
        r.host.endIteration()
        #expect(!r.conn.paused, "the buffered input was consumed: reading resumes")
        #expect(r.host.seqs(where: isEnqueue).count == sent / 1_024)
        #expect(r.conn.outputLines == ["EMPTY"])
    }

    @Test func aHalfClosedClientGetsEveryAnswerThenTheConnectionCloses() {
        let r = SessionRig()
        r.conn.receive("PING\nENQUEUE a\n")
        r.step()
        r.session.endOfInput()
        r.host.endIteration()
        #expect(!r.conn.closedAfterFlush)
        r.session.fill(r.host.seqs(where: isEnqueue)[0], .ok(taskId: 1, lamport: 1))
        r.host.endIteration()
        #expect(r.conn.outputLines == ["PONG", "OK 1 1"])
        #expect(r.conn.closedAfterFlush)
    }

    @Test func withATokenOnlyAuthPingHelpAndQuitRunBeforeAuth() {
        let r = SessionRig(needsAuth: true)
        r.host.token = "s3cret"
        r.conn.receive("ENQUEUE x\nPING\nAUTH wrong\nAUTH s3cret\nENQUEUE x\n")
        r.step()
        #expect(r.host.seqs(where: isEnqueue).count == 1)
        r.session.fill(r.host.seqs(where: isEnqueue)[0], .ok(taskId: 1, lamport: 1))
        r.host.endIteration()
        let lines = r.conn.outputLines
        #expect(lines.count == 5)
        #expect(lines[0].hasPrefix("ERR AUTH "))
        #expect(lines[1] == "PONG")
        #expect(lines[2].hasPrefix("ERR AUTH "))
        #expect(lines[3] == "OK")
        #expect(lines[4] == "OK 1 1")
    }
}
