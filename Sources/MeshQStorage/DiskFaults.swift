// DiskFaults: injected disk failures, so tests can drive the paths a real
// failing disk takes (EIO from fdatasync, ENOSPC from write) without one.
// meshqd reads a spec from MESHQ_TEST_DISK_FAULT (and logs a warning that it
// is on); nothing sets it in service. Spec: `<op>:<ERRNO>[:after=N]`, op
// `write` or `fdatasync`, ERRNO `EIO` or `ENOSPC` (or a number): the first N
// calls of that op succeed, every later one fails. One instance may be shared
// by several logs (the node's log and its mailbox log count together).

import Glibc

public final class DiskFaults: @unchecked Sendable {
    public enum Op: String, Sendable { case write, fdatasync }

    public let op: Op
    public let errno: Int32
    private var remaining: Int

    public init(op: Op, errno: Int32, after: Int = 0) {
        self.op = op
        self.errno = errno
        remaining = after
    }

    /// Nil (not a valid spec) or the faults it describes.
    public static func parse(_ spec: String) -> DiskFaults? {
        let parts = spec.split(separator: ":").map(String.init)
        guard (2...3).contains(parts.count), let op = Op(rawValue: parts[0]) else { return nil }
        let names: [String: Int32] = ["EIO": EIO, "ENOSPC": ENOSPC]
        guard let e = names[parts[1]] ?? Int32(parts[1]), e > 0 else { return nil }
        var after = 0
        if parts.count == 3 {
            guard parts[2].hasPrefix("after="), let n = Int(parts[2].dropFirst(6)), n >= 0 else { return nil }
            after = n
        }
        return DiskFaults(op: op, errno: e, after: after)
    }

    /// The errno this call of `op` must fail with, if any.
    func fail(_ call: Op) -> Int32? {
        guard call == op else { return nil }
        if remaining > 0 {
            remaining -= 1
            return nil
        }
        return errno
    }
}
