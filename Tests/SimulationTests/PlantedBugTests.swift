// Each invariant check must catch a bug planted to break it; a simulator that
// passes a broken protocol proves nothing.
import Testing
@testable import MeshQCore

@Suite struct PlantedBugTests {
    /// Runs seeds until one fails (with `expected` in its report, when given:
    /// a planted bug may first break something else); returns that report.
    private func firstFailure(_ bug: PlantedBug, seeds: Int = 300, expected: String? = nil) -> String? {
        var options = ClusterSimulator.Options()
        options.plantedBugs = [bug]
        var other: String?
        for seed in 1...UInt64(seeds) {
            do {
                try ClusterSimulator(seed: seed, options: options).run()
            } catch {
                let report = "\(error)"
                guard let expected, !report.contains(expected) else { return report }
                other = other ?? report
            }
        }
        return other
    }

    @Test func doubleVotingIsCaughtAsTwoLeadersInOneEpoch() {
        let report = firstFailure(.voteTwicePerEpoch)
        #expect(report?.contains("two leaders in epoch") == true, "\(report ?? "not caught")")
        #expect(report?.contains("replay: MESHQ_SIM_SEED=") == true)
    }

    @Test func skippedLamportMergeIsCaught() {
        let report = firstFailure(.skipLamportMerge, seeds: 5)
        #expect(report?.contains("Lamport") == true, "\(report ?? "not caught")")
    }

    @Test func missingBullyTakeoverIsCaughtByTheLivenessCheck() {
        let report = firstFailure(.noBullyTakeover)
        #expect(report?.contains("liveness") == true, "\(report ?? "not caught")")
    }

    @Test func skippingLeaderRecoveryIsCaughtAsALostTask() {
        let report = firstFailure(.skipRecovery, expected: "whose ENQUEUE got OK")
        #expect(report?.contains("whose ENQUEUE got OK") == true, "\(report ?? "not caught")")
    }

    @Test func anAckNotAppliedIsCaughtAsARedelivery() {
        let report = firstFailure(.ackNotApplied, expected: "delivered again after its ACK got OK")
        #expect(report?.contains("delivered again after its ACK got OK") == true, "\(report ?? "not caught")")
    }

    @Test func aMutexThatNeverDefersIsCaught() {
        let report = firstFailure(.mutexNeverDefers, expected: "while inside the critical section")
        #expect(report?.contains("while inside the critical section") == true, "\(report ?? "not caught")")
    }

    @Test func aParkedTaskAppliedOnEveryDeliveryIsCaught() {
        let report = firstFailure(.parkedAppliedTwice, expected: "twice")
        #expect(report?.contains("twice") == true, "\(report ?? "not caught")")
    }

    @Test func aSeedReplaysBitForBit() {
        var a = ClusterSimulator.Options()
        a.plantedBugs = [.voteTwicePerEpoch]
        var first: String?
        for seed in 1...UInt64(300) {
            do { try ClusterSimulator(seed: seed, options: a).run() } catch {
                first = "\(error)"
                let again: String
                do {
                    try ClusterSimulator(seed: seed, options: a).run()
                    again = "passed"
                } catch {
                    again = "\(error)"
                }
                #expect(again == first)
                break
            }
        }
        #expect(first != nil)
    }
}
