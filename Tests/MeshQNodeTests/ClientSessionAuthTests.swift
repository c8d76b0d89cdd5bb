// ClientSession's part of hostile-client defence, on the fake connection:
// wrong AUTH answers delayed (and pipelined guesses held behind them), the
// tenth closing the connection, the idle flag, and closing for a timeout
// after every reply already owed.
import MeshQCore
import Testing
@testable import MeshQNode

@Suite struct ClientSessionAuthTests {
    @Test func theDelayDoublesFrom100msAfterTheFirstWrongTokenUpTo5s() {
        #expect((1...9).map { ClientSession.authDelayMs(failures: $0) }
            == [0, 100, 200, 400, 800, 1600, 3200, 5000, 5000])
    }

    @Test func aSecondWrongTokenHoldsEveryLaterLineUntilItsAnswer() {
        let r = SessionRig(needsAuth: true)
        r.host.token = "s3cret"
        r.conn.receive("AUTH a\nAUTH b\nAUTH s3cret\nENQUEUE x\n")
        r.step()
        #expect(r.conn.outputLines == ["ERR AUTH wrong token"])
        #expect(r.session.authPenalty?.delayMs == 100)
        #expect(!r.session.isAuthenticated && !r.session.owesNothing)
        #expect(r.host.submitted.isEmpty)   // the right token behind the guess waits too
        r.session.releaseAuthPenalty()
        r.host.endIteration()
        #expect(r.conn.outputLines == ["ERR AUTH wrong token", "ERR AUTH wrong token", "OK"])
        #expect(r.session.isAuthenticated && r.host.submitted.count == 1)
    }

    @Test func theTenthWrongTokenIsAnsweredAndTheConnectionClosed() {
        let r = SessionRig(needsAuth: true)
        r.host.token = "s3cret"
        r.conn.receive(String(repeating: "AUTH guess\n", count: 12))
        r.step()
        while r.session.authPenalty != nil {
            r.session.releaseAuthPenalty()
            r.host.endIteration()
        }
        #expect(r.conn.outputLines.count == 10)
        #expect(r.conn.outputLines.last == "ERR AUTH wrong token (10 wrong tokens: closing)")
        #expect(r.conn.closedAfterFlush)
    }

    @Test func expiringAnswersWhatIsOwedFirstThenSaysWhy() {
        let r = SessionRig(needsAuth: true)
        r.host.token = "s3cret"
        r.conn.receive("PING\nAUTH a\nAUTH b\n")
        r.step()
        r.session.expire(.error(.auth, "authentication timeout"))
        r.host.endIteration()
        #expect(r.conn.outputLines == ["PONG", "ERR AUTH wrong token", "ERR AUTH wrong token",
                                       "ERR AUTH authentication timeout"])
        #expect(r.conn.closedAfterFlush)
    }

    @Test func onlyCompleteLinesCountAndABlockingDequeueIsNotIdle() {
        let r = SessionRig()
        r.conn.receive("PING\n\n   \nDEQ")
        r.step()
        #expect(r.session.linesReceived == 1 && r.session.owesNothing)
        r.conn.receive("UEUE 5000\n")
        r.step()
        #expect(r.session.linesReceived == 2 && !r.session.owesNothing)
        r.session.fill(r.host.submitted[0].seq, .empty)
        r.host.endIteration()
        #expect(r.session.owesNothing)
        r.session.expire(nil)
        #expect(r.conn.closedAfterFlush && r.conn.outputLines == ["PONG", "EMPTY"])
    }
}
