// SimRandom: the simulator's generator, the shared seeded SplitMix64, so a
// seed replays the same run bit for bit on any machine.
import MeshQTestSupport

typealias SimRandom = SplitMix64
