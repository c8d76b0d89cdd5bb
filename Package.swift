// swift-tools-version:6.0
import PackageDescription

// Layering (docs/design.md): CLibevent <- Reactor; MeshQCore is pure (no I/O);
// MeshQStorage does files; MeshQNode composes them; meshqd and meshq are mains.
// MeshQClient is the blocking client side (LineClient, STATUS reader, config
// writer) shared by the CLI and the tests; MeshQTestSupport holds the tests'
// harnesses for real meshqd processes.
let package = Package(
    name: "meshq",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "meshqd", targets: ["meshqd"]),
        .executable(name: "meshq", targets: ["meshq"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibevent",
            pkgConfig: "libevent",
            providers: [.apt(["libevent-dev", "libssl-dev"])]
        ),
        .target(name: "Reactor", dependencies: ["CLibevent"]),
        .target(name: "MeshQClient", dependencies: ["Reactor"]),
        .target(
            name: "MeshQCore",
            dependencies: [
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
            ]
        ),
        // CRC32C on the CPU's instruction (SSE4.2), for MeshQStorage.
        .target(name: "CCRC32C"),
        .target(
            name: "MeshQStorage",
            dependencies: [
                "MeshQCore", "CCRC32C",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .target(
            name: "MeshQNode",
            dependencies: [
                "CLibevent", "Reactor", "MeshQCore", "MeshQStorage",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .executableTarget(
            name: "meshqd",
            dependencies: [
                "MeshQNode",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "meshq",
            dependencies: [
                "Reactor", "MeshQCore", "MeshQClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .testTarget(name: "MeshQCoreTests", dependencies: ["MeshQCore", "MeshQTestSupport"], exclude: ["testdata"]),
        .testTarget(name: "MeshQStorageTests", dependencies: ["MeshQStorage", "MeshQCore", "MeshQTestSupport"]),
        .testTarget(name: "ReactorTests", dependencies: ["Reactor", "MeshQTestSupport"]),
        // meshqd too: its command line and sd_notify are tested with @testable import.
        .testTarget(
            name: "MeshQNodeTests",
            dependencies: [
                "MeshQNode", "meshqd", "MeshQCore", "Reactor", "MeshQTestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "MeshQClientTests", dependencies: ["MeshQClient", "MeshQCore"]),
        .target(name: "MeshQTestSupport", dependencies: ["MeshQClient", "MeshQCore", "Reactor"], path: "Tests/MeshQTestSupport"),
        .testTarget(name: "IntegrationTests", dependencies: ["MeshQTestSupport", "MeshQClient", "Reactor"]),
        // `make fuzz` (fuzz/README.md): the targets' bodies, and the libFuzzer
        // entry, which an ordinary build makes a corpus replayer.
        .target(name: "MeshQFuzzTargets", dependencies: ["MeshQCore", "MeshQStorage"], path: "fuzz/Targets"),
        .executableTarget(name: "meshq-fuzz", dependencies: ["MeshQFuzzTargets"], path: "fuzz/Entry"),
        .testTarget(name: "FuzzCorpusTests", dependencies: ["MeshQFuzzTargets"]),
        .testTarget(
            name: "SimulationTests",
            dependencies: ["MeshQCore", "MeshQTestSupport", .product(name: "HeapModule", package: "swift-collections")]
        ),
    ]
)
