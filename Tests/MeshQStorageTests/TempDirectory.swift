// A fresh directory per test, because Swift Testing runs tests in parallel and
// storage tests must never see each other's files.
import Foundation

func makeTempDir(_ tag: String = "storage") -> String {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("meshq-\(tag)-\(UUID().uuidString)").path
    try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

func removeTempDir(_ d: String) {
    try? FileManager.default.removeItem(atPath: d)
}

/// What recovery reports dropped of a torn write `tail`: its bytes up to the
/// last nonzero one (zeros after it read as space reserved ahead of writes).
func writtenLength(_ tail: ArraySlice<UInt8>) -> Int {
    (tail.lastIndex { $0 != 0 }.map { $0 + 1 } ?? tail.startIndex) - tail.startIndex
}
