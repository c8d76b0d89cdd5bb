// FuzzCorpusTests: every file of fuzz/corpus/<target>/ (the seeds, and every
// crash libFuzzer ever found, saved there as a regression input) goes through
// its fuzz target once, so `make test` replays them without libFuzzer. With
// MESHQ_WRITE_FUZZ_SEEDS=1 it first (re)writes the seeds from FuzzSeeds.

import Foundation
import MeshQFuzzTargets
import Testing

@Suite struct FuzzCorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fuzz/corpus")

    @Test(arguments: FuzzTargets.Target.allCases)
    func corpusReplays(_ target: FuzzTargets.Target) throws {
        let dir = Self.corpus.appendingPathComponent(target.rawValue)
        if ProcessInfo.processInfo.environment["MESHQ_WRITE_FUZZ_SEEDS"] == "1" {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            for seed in FuzzTargets.seeds(target) {
                try Data(seed.bytes).write(to: dir.appendingPathComponent("seed-\(seed.name)"))
            }
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(files.count >= FuzzTargets.seeds(target).count, "the seed corpus of \(target) is missing files")
        for file in files {
            let data = try Data(contentsOf: dir.appendingPathComponent(file))
            target.run(Array(data))
        }
        for seed in FuzzTargets.seeds(target) { target.run(seed.bytes) }
    }
}
