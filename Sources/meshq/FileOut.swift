// FileOut: unbuffered whole-line writes to stderr (progress lines, child logs)
// and stdout (tables, `meshq work` output), so lines never interleave mid-line.
// Plain write(2), never FileHandle.write: with SIGPIPE ignored (meshq work), a
// closed pipe must be an error the caller sees, not a trap. `stdout` reports
// whether the whole line went out; a worker that cannot hand a task on must not
// ack it.
import Glibc

enum FileOut {
    static func stderr(_ s: String) {
        _ = write(all: s, to: 2)
    }

    @discardableResult
    static func stdout(_ s: String) -> Bool {
        write(all: s, to: 1)
    }

    private static func write(all s: String, to fd: Int32) -> Bool {
        let bytes = Array((s.hasSuffix("\n") ? s : s + "\n").utf8)
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { raw in Glibc.write(fd, raw.baseAddress! + off, raw.count - off) }
            if n > 0 {
                off += n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                return false
            }
        }
        return true
    }
}
