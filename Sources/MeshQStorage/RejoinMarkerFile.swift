// RejoinMarkerFile: `data_dir/rejoining`, present while this node must
// not vote because its log lost records it may have acknowledged. It is
// written (and fsync'd) before the damaged records are set aside, and removed
// once the node holds a leader's log again, so a restart in between still
// starts catching up: the repaired log looks whole and cannot tell.
// Invariant: while the file exists, the node starts as a non-voter.
import Foundation
import Glibc

public struct RejoinMarkerFile: Sendable {
    private let file: ChecksummedFile
    public var path: String { file.path }

    public init(directory: String) {
        file = ChecksummedFile(directory: directory, name: "rejoining")
    }

    /// Any marker, even a damaged one, means "catching up": the safe reading.
    public var exists: Bool { access(file.path, F_OK) == 0 }

    /// `reason`: one word for the operator (e.g. where the damage was).
    public func create(reason: String) throws {
        try file.write(["rejoining", reason.replacingOccurrences(of: " ", with: "_")])
    }

    public func remove() throws {
        try file.remove()
    }
}
