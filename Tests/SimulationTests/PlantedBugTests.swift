// Each invariant check must catch a bug planted to break it; a simulator that
// passes a broken protocol proves nothing.
import Testing
@testable import MeshQCore

@Suite struct PlantedBugTests {
    /// Runs seeds until one fails; returns its report.
    private func firstFailure(_ bug: PlantedBug, seeds: Int = 300) -> String? {
        var options = ClusterSimulator.Options()
        options.plantedBugs = [bug]
        for seed in 1...UInt64(seeds) {
            do {
                try ClusterSimulator(seed: seed, options: options).run()
            } catch {
                return "\(error)"
            }
        }
        return nil
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
