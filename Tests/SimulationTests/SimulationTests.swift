// Many seeded fault schedules through ClusterSimulator. `make test` runs 500
// seeds; `make sim SEEDS=20000` runs more; MESHQ_SIM_SEED=N replays one;
// MESHQ_SIM_FIRST=N starts the range at seed N instead of 1000 (to split a
// long run across processes: `make sim SEEDS=10000 FIRST=11000`).
import Foundation
import Testing

@Suite struct SimulationTests {
    static var seeds: [UInt64] {
        let env = ProcessInfo.processInfo.environment
        if let one = env["MESHQ_SIM_SEED"].flatMap(UInt64.init) { return [one] }
        let n = env["MESHQ_SIM_SEEDS"].flatMap(Int.init) ?? 500
        let first = env["MESHQ_SIM_FIRST"].flatMap(UInt64.init) ?? 1_000
        return (0..<UInt64(n)).map { first + $0 }
    }

    /// MESHQ_SIM_PROFILE=hostile: more late messages, drops and faults;
    /// =wiped: half the boots find the replicated state gone.
    static var profile: String { ProcessInfo.processInfo.environment["MESHQ_SIM_PROFILE"] ?? "default" }
    static var options: ClusterSimulator.Options {
        switch profile {
        case "hostile": return ClusterSimulator.hostileOptions()
        case "wiped": return ClusterSimulator.wipedOptions()
        default: return ClusterSimulator.Options()
        }
    }

    @Test func threeNodeClustersKeepTheInvariantsUnderFaults() {
        var failures: [String] = []
        var elections = 0
        var digests: [String] = []
        for seed in Self.seeds {
            let sim = ClusterSimulator(seed: seed, options: Self.options)
            do {
                try sim.run()
                elections += sim.elections
            } catch {
                failures.append("\(error)")
                if failures.count >= 3 && !SimDigest.enabled { break }
            }
            if SimDigest.enabled { digests.append("\(seed) \(sim.digest)") }
        }
        SimDigest.write(digests, name: "three-node-\(Self.profile)")
        print("three-node clusters, \(Self.profile) profile: \(Self.seeds.count) seeds, \(failures.count) failed, \(elections) elections")
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n\n"))")
        #expect(elections > Self.seeds.count, "faults should force re-elections: \(elections) elections in \(Self.seeds.count) seeds")
    }

    /// A frozen leader, then a frozen follower, on an otherwise healthy
    /// network: the other nodes keep answering every command within 1.5 s,
    /// with no error (docs/replication.md: silence is failure).
    @Test(arguments: [nil, 1] as [Int?])
    func aFrozenNodeNeverStopsTheOthers(node: Int?) {
        var failures: [String] = []
        var digests: [String] = []
        for seed in Self.seeds.prefix(30) {
            let sim = ClusterSimulator(seed: seed, options: ClusterSimulator.frozenOptions(node))
            do {
                try sim.run()
            } catch {
                failures.append("\(error)")
                if !SimDigest.enabled { break }
            }
            if SimDigest.enabled { digests.append("\(seed) \(sim.digest)") }
        }
        SimDigest.write(digests, name: "frozen-\(node.map(String.init) ?? "leader")")
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n\n"))")
    }

    @Test func fiveNodeClusters() {
        var failures: [String] = []
        var options = ClusterSimulator.Options()
        options.nodes = 5
        var digests: [String] = []
        for seed in Self.seeds.prefix(100) {
            let sim = ClusterSimulator(seed: seed, options: options)
            do {
                try sim.run()
            } catch {
                failures.append("\(error)")
                if !SimDigest.enabled { break }
            }
            if SimDigest.enabled { digests.append("\(seed) \(sim.digest)") }
        }
        SimDigest.write(digests, name: "five-node")
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n\n"))")
    }
}
