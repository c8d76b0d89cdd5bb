import Testing
@testable import MeshQCore

@Suite struct CristianClockTests {
    @Test func offsetFromOneSymmetricSample() {
        var c = CristianClock()
        // Leader is 1000 ms ahead; 10 ms each way.
        let s = c.add(sentAtMs: 5_000, serverTimeMs: 6_010, receivedAtMs: 5_020)
        #expect(s == .init(offsetMs: 1_000, rttMs: 20))
        #expect(c.corrected(localMs: 7_000) == 8_000)
    }

    @Test func asymmetricSlowSamplesLoseToTheFastestRoundTrip() {
        var c = CristianClock()
        // True offset +50. A slow reply path (2 ms out, 80 ms back) misleads by 39 ms...
        c.add(sentAtMs: 0, serverTimeMs: 52, receivedAtMs: 82)
        #expect(abs(c.offsetMs - 11) < 0.001)
        // ...until a fast symmetric round (1 ms each way) arrives: its error is at most 1 ms.
        c.add(sentAtMs: 1_000, serverTimeMs: 1_051, receivedAtMs: 1_002)
        #expect(abs(c.offsetMs - 50) <= 1)
        #expect(c.best?.rttMs == 2)
    }

    @Test func windowForgetsOldSamplesAndRejectsBackwardClocks() {
        var c = CristianClock(window: 2)
        c.add(sentAtMs: 0, serverTimeMs: 100, receivedAtMs: 1)      // rtt 1, best
        c.add(sentAtMs: 10, serverTimeMs: 200, receivedAtMs: 20)
        c.add(sentAtMs: 30, serverTimeMs: 300, receivedAtMs: 40)
        #expect(c.samples.count == 2)
        #expect(c.best?.rttMs == 10)
        #expect(c.add(sentAtMs: 50, serverTimeMs: 1, receivedAtMs: 40) == nil)
        c.reset()
        #expect(c.offsetMs == 0)
    }
}
