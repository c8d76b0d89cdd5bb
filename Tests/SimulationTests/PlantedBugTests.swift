// Each invariant check must catch a bug planted to break it; a simulator that
// passes a broken protocol proves nothing. `make sim-planted` measures how
// many of 200 seeds catch each bug (MESHQ_PLANTED_RATE_SEEDS).
import Foundation
import Testing
@testable import MeshQCore

#if MESHQ_TESTING
@Suite struct PlantedBugTests {
    /// Runs seeds until one fails (with `expected` in its report, when given:
    /// a planted bug may first break something else); returns that report.
    private func firstFailure(_ bug: PlantedBug, seeds: Int = 300, expected: String? = nil,
                              options base: ClusterSimulator.Options = .init()) -> String? {
        var options = base
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

    /// The bug is caught, and by the check whose report contains `check`.
    private func expectCaught(_ bug: PlantedBug, by check: String, seeds: Int = 300,
                              options: ClusterSimulator.Options = .init()) {
        let report = firstFailure(bug, seeds: seeds, expected: check, options: options)
        #expect(report?.contains(check) == true, "\(report ?? "not caught")")
    }

    @Test func doubleVotingIsCaughtAsTwoLeadersInOneEpoch() {
        let report = firstFailure(.voteTwicePerEpoch)
        #expect(report?.contains("two leaders in epoch") == true, "\(report ?? "not caught")")
        #expect(report?.contains("replay: MESHQ_SIM_SEED=") == true)
    }

    @Test func skippedLamportMergeIsCaught() {
        expectCaught(.skipLamportMerge, by: "Lamport", seeds: 5)
    }

    @Test func missingBullyTakeoverIsCaughtByTheLivenessCheck() {
        expectCaught(.noBullyTakeover, by: "liveness")
    }

    @Test func skippingLeaderRecoveryIsCaughtAsLogDisagreement() {
        expectCaught(.skipRecovery, by: "log agreement", seeds: 60, options: ClusterSimulator.frozenOptions(nil))
    }

    @Test func anAckNotAppliedIsCaughtAsARedelivery() {
        expectCaught(.ackNotApplied, by: "after its ACK got OK")
    }

    @Test func aLeaderServingWithoutItsLeaseIsCaught() {
        expectCaught(.leaseNeverExpires, by: "after its ACK got OK", seeds: 20, options: ClusterSimulator.frozenOptions(nil))
    }

    @Test func aFailureDetectorThatTrustsTheTransportIsCaught() {
        // A frozen leader keeps its sockets open: trusting them stalls the rest.
        expectCaught(.trustTransport, by: "availability", seeds: 20, options: ClusterSimulator.frozenOptions(nil))
    }

    /// How many of N seeds catch each planted bug, and with which check
    /// (`make sim-planted`; skipped unless MESHQ_PLANTED_RATE_SEEDS is set).
    @Test func detectionRates() {
        guard let n = ProcessInfo.processInfo.environment["MESHQ_PLANTED_RATE_SEEDS"].flatMap(Int.init) else { return }
        let bugs: [PlantedBug] = [.voteTwicePerEpoch, .skipLamportMerge, .noBullyTakeover, .skipRecovery, .ackNotApplied,
                                  .mutexNeverDefers, .parkedAppliedTwice, .leaseNeverExpires, .abortIgnoresEpoch,
                                  .prepareWithoutPromise, .recoveryByIndexOnly, .snapshotDropsSuffix, .trustTransport,
                                  .corruptionAsTornTail, .emptyLogVotesAtOnce, .readyIgnoresPriority, .delayFiresEarly,
                                  .deliveryCapIgnored, .dedupSkippedAtApply, .touchNotApplied]
        // MESHQ_PLANTED_ONLY=name[,name]: measure only these.
        let only = ProcessInfo.processInfo.environment["MESHQ_PLANTED_ONLY"].map { Set($0.split(separator: ",").map(String.init)) }
        var dataChecksOnly = ClusterSimulator.corruptionOptions()
        dataChecksOnly.checkRejoinVotes = false
        var wipedDataChecksOnly = ClusterSimulator.wipedOptions()
        wipedDataChecksOnly.checkRejoinVotes = false
        let profiles: [(String, ClusterSimulator.Options)] = [
            ("default", ClusterSimulator.Options()), ("hostile", ClusterSimulator.hostileOptions()),
            ("frozen leader", ClusterSimulator.frozenOptions(nil)), ("corrupt disks", ClusterSimulator.corruptionOptions()),
            ("corrupt disks, data checks only", dataChecksOnly), ("wiped disks", ClusterSimulator.wipedOptions()),
            ("wiped disks, data checks only", wipedDataChecksOnly),
        ]
        // MESHQ_PLANTED_PROFILES=name[,name]: only these profiles.
        let onlyProfiles = ProcessInfo.processInfo.environment["MESHQ_PLANTED_PROFILES"]
            .map { Set($0.split(separator: ",").map(String.init)) }
        for bug in bugs where only?.contains("\(bug)") ?? true {
            var line = "planted \(bug):"
            for (name, base) in profiles where onlyProfiles?.contains(name) ?? true {
                var options = base
                options.plantedBugs = [bug]
                var caught = 0
                var kinds: [String: Int] = [:]
                for seed in 1...UInt64(n) {
                    do { try ClusterSimulator(seed: seed, options: options).run() } catch {
                        caught += 1
                        kinds[Self.kind(of: "\(error)"), default: 0] += 1
                    }
                }
                let by = kinds.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                line += " | \(name) \(caught)/\(n)" + (by.isEmpty ? "" : " (\(by))")
            }
            print(line)
        }
    }

    /// Which check a failure report comes from.
    static func kind(of report: String) -> String {
        let checks = [("voted while rejoining", "no vote while rejoining"), ("final leader", "final leader holds"), ("two leaders", "one leader per epoch"), ("Lamport", "Lamport"), ("after its ACK got OK", "task after ACK"),
                      ("whose ENQUEUE got OK", "lost task"), ("critical section", "mutual exclusion"),
                      ("twice", "applied once"), ("log agreement", "log agreement"), ("task id", "one payload per id"),
                      ("payload", "one payload per id"), ("liveness", "liveness"), ("parked", "mailbox"),
                      ("availability", "availability"), ("ready order", "ready order"), ("due time", "due time"),
                      ("delivery cap", "delivery cap"), ("one key, one task", "one key one task"), ("TOUCH", "touch")]
        return checks.first { report.contains($0.0) }?.1 ?? "other"
    }


    @Test func corruptionTreatedAsATornTailIsCaught() {
        // Directly: the node votes before catching up (check 10)...
        expectCaught(.corruptionAsTornTail, by: "voted while rejoining", seeds: 30)
        // ...and by what it costs: without check 10, committed entries are
        // lost (an OK'd task, or a committed index rewritten).
        var o = ClusterSimulator.corruptionOptions()
        o.checkRejoinVotes = false
        let report = firstFailure(.corruptionAsTornTail, seeds: 100, options: o)
        let kind = report.map(Self.kind(of:))
        #expect(["lost task", "final leader holds", "log agreement", "task after ACK"].contains(kind ?? ""), "\(report ?? "not caught")")
    }

    @Test func aWipedNodeVotingAtOnceIsCaught() {
        // The old rule (an empty data_dir votes at once, no marker): a wiped
        // node helps elect a leader that lacks what it had acknowledged, and
        // committed entries are lost or rewritten; or, its vote wiped with
        // the rest, it votes a second time in an epoch and makes two leaders.
        let report = firstFailure(.emptyLogVotesAtOnce, seeds: 200, options: ClusterSimulator.wipedOptions())
        let kind = report.map(Self.kind(of:))
        #expect(["lost task", "final leader holds", "log agreement", "task after ACK", "one leader per epoch"].contains(kind ?? ""),
                "\(report ?? "not caught")")
    }

    @Test func readyOrderIgnoringPriorityIsCaught() {
        expectCaught(.readyIgnoresPriority, by: "ready order", seeds: 20)
    }

    @Test func aDelayFiringEarlyIsCaught() {
        expectCaught(.delayFiresEarly, by: "due time", seeds: 20)
    }

    @Test func anIgnoredDeliveryCapIsCaught() {
        expectCaught(.deliveryCapIgnored, by: "delivery cap", seeds: 20)
    }

    @Test func aKeyNotCheckedAtApplyIsCaught() {
        expectCaught(.dedupSkippedAtApply, by: "one key, one task", seeds: 40)
    }

    @Test func aTouchNotAppliedIsCaught() {
        expectCaught(.touchNotApplied, by: "TOUCH", seeds: 20)
    }

    @Test func aParkedTaskAppliedOnEveryDeliveryIsCaught() {
        expectCaught(.parkedAppliedTwice, by: "twice")
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
#endif
