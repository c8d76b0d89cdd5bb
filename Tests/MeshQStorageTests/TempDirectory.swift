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
