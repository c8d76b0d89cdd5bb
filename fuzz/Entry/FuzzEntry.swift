// meshq-fuzz: the libFuzzer entry for the targets in FuzzTargets (see
// fuzz/README.md). `make fuzz` builds it with -sanitize=fuzzer,address
// -DMESHQ_FUZZ: main() then hands libFuzzer's driver the target named by
// MESHQ_FUZZ_TARGET, and libFuzzer takes its own flags from the command line.
// In an ordinary build it replays files instead:
//     meshq-fuzz <target> FILE|DIR...
// which is how a crash file is reproduced under a debugger.

import Foundation
import MeshQFuzzTargets

#if MESHQ_FUZZ
// libFuzzer's driver, given our main (SwiftPM links an executable's main
// under its own name, so libFuzzer's main() would not be the one called).
@_silgen_name("LLVMFuzzerRunDriver")
func llvmFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

nonisolated(unsafe) private var selected = FuzzTargets.Target.lines

// libFuzzer's own main() (linked in, though not the one called) needs it too.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    selected.run(start.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? [])
    return 0
}

@main
struct FuzzMain {
    static func main() {
        let name = ProcessInfo.processInfo.environment["MESHQ_FUZZ_TARGET"] ?? ""
        guard let target = FuzzTargets.Target(rawValue: name) else {
            FileHandle.standardError.write(Data("meshq-fuzz: set MESHQ_FUZZ_TARGET to one of \(FuzzTargets.Target.allCases.map(\.rawValue))\n".utf8))
            exit(2)
        }
        selected = target
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(llvmFuzzerRunDriver(&argc, &argv, fuzzOne))
    }
}
#else
@main
struct FuzzReplay {
    static func main() {
        let args = CommandLine.arguments.dropFirst()
        guard let name = args.first, let target = FuzzTargets.Target(rawValue: name), args.count >= 2 else {
            FileHandle.standardError.write(Data("usage: meshq-fuzz <\(FuzzTargets.Target.allCases.map(\.rawValue).joined(separator: "|"))> FILE|DIR...\n".utf8))
            exit(2)
        }
        var ran = 0
        for path in args.dropFirst() {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
                FileHandle.standardError.write(Data("meshq-fuzz: no such file: \(path)\n".utf8))
                exit(2)
            }
            let files = isDir.boolValue
                ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { "\(path)/\($0)" }
                : [path]
            for file in files {
                guard let data = FileManager.default.contents(atPath: file) else { continue }
                target.run(Array(data))
                ran += 1
            }
        }
        print("meshq-fuzz: \(name): \(ran) inputs, no invariant broken")
    }
}
#endif
