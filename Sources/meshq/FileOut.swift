// FileOut: unbuffered writes to stderr (progress lines, child logs) that never
// interleave mid-line with stdout's table output.
import Foundation

enum FileOut {
    static func stderr(_ s: String) {
        FileHandle.standardError.write((s.hasSuffix("\n") ? s : s + "\n").data(using: .utf8)!)
    }

    static func stdout(_ s: String) {
        FileHandle.standardOutput.write((s.hasSuffix("\n") ? s : s + "\n").data(using: .utf8)!)
    }
}
