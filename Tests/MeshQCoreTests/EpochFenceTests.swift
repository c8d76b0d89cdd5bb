import Testing
@testable import MeshQCore

@Suite struct EpochFenceTests {
    @Test func aNewerEpochIsAcceptedAndFencesOlderOnes() {
        var f = EpochFence()
        let newer = f.accept(epoch: 4)
        let older = f.accept(epoch: 3)
        #expect(newer)
        #expect(!older)
        #expect(f.promised == 4)
    }

    @Test func aPromiseFencesWithoutAMessageAndNeverGoesBack() {
        var f = EpochFence(promised: 2)
        f.promise(epoch: 6)
        f.promise(epoch: 5)
        #expect(f.promised == 6)
        let belowPromise = f.accept(epoch: 5)
        let atPromise = f.accept(epoch: 6)
        #expect(!belowPromise)
        #expect(atPromise)
    }
}
