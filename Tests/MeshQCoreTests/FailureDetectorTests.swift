// FailureDetector: alive only while frames arrive; a direct link needs the
// peer to hear us; a closed connection is loud, silence takes the timeout.
import Testing
@testable import MeshQCore

@Suite struct FailureDetectorTests {
    /// Node 1 among 1, 2, 3: alive after 500 ms of silence no more, direct links after 250.
    static func detector() -> FailureDetector {
        FailureDetector(nodeId: 1, peers: [1, 2, 3], timeoutMs: 500, directTimeoutMs: 250)
    }

    @Test func aPeerIsAliveOnlyWhileItsFramesArrive() {
        var d = Self.detector()
        #expect(d.evaluate(now: 0).isEmpty)
        d.heard(from: 2, directly: true, now: 10)
        #expect(d.evaluate(now: 10) == [.alive(2)])
        #expect(d.nextExpiry() == 510)
        #expect(d.evaluate(now: 509).isEmpty)
        // Silence, with no closed socket: dead after the timeout.
        #expect(d.evaluate(now: 510) == [.dead(2)])
        #expect(d.alive.isEmpty)
    }

    @Test func aDirectLinkNeedsThePeerToHearUsAndGoesBeforeTheTimeout() {
        var d = Self.detector()
        d.heard(from: 2, directly: true, now: 0)
        d.report(from: 2, heard: [3])          // 2 does not hear us: a one-way cut
        #expect(d.evaluate(now: 0) == [.alive(2)])
        #expect(d.direct.isEmpty)
        d.report(from: 2, heard: [1, 3])
        #expect(d.evaluate(now: 1) == [.directUp(2)])
        #expect(d.heardDirectly(now: 1) == [2])
        // No direct frame for 250 ms: off the direct link, still alive.
        #expect(d.evaluate(now: 250) == [.directDown(2)])
        #expect(d.alive == [2])
        // Down for a whole timeout while the transport kept it: reset it.
        #expect(d.evaluate(now: 500) == [.dead(2)])
        #expect(d.evaluate(now: 750) == [.resetLink(2)])
    }

    @Test func aPeerHeardOverARelayStaysAliveWithoutADirectLink() {
        var d = Self.detector()
        d.heard(from: 3, directly: false, now: 0)
        #expect(d.evaluate(now: 0) == [.alive(3)])
        #expect(d.direct.isEmpty && d.heardDirectly(now: 0).isEmpty)
    }

    @Test func aClosedConnectionIsLoudUnlessThePeerIsHeardOverARelay() {
        var d = Self.detector()
        for p in [2, 3] {
            d.heard(from: p, directly: true, now: 0)
            d.report(from: p, heard: [1])
        }
        _ = d.evaluate(now: 0)
        d.heard(from: 3, directly: false, now: 5)
        d.closed(2, now: 10)
        d.closed(3, now: 10)
        // 2 is dead at once; 3 was heard over a relay since, so only its link goes.
        #expect(d.evaluate(now: 10) == [.directDown(2), .dead(2), .directDown(3)])
        #expect(d.alive == [3])
        // A closed link is not reset again: the transport redials it anyway.
        #expect(!d.evaluate(now: 1_000).contains(.resetLink(2)))
    }

    #if MESHQ_TESTING
    /// The old behaviour, planted: a silent peer stays alive until its
    /// connection closes. The check above that it dies must fail then.
    @Test func trustingTheTransportKeepsASilentPeerAlive() {
        var d = Self.detector()
        d.trustTransport = true
        d.heard(from: 2, directly: true, now: 0)
        _ = d.evaluate(now: 0)
        #expect(d.evaluate(now: 10_000).isEmpty)
        #expect(d.alive == [2])
    }
    #endif
}
