// FileLimit: many thousands of client connections need more than the usual
// 1024 file descriptors. At start the daemon raises its soft RLIMIT_NOFILE to
// the hard limit (no privilege needed) and reports what it got, so
// `max_connections` beyond it can be warned about instead of failing accepts.
import Glibc

enum FileLimit {
    /// Raises the soft open-file limit to the hard one; returns the soft limit
    /// now in force, or -1 when it cannot be read.
    static func raise() -> Int {
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        var rl = rlimit()
        guard getrlimit(resource, &rl) == 0 else { return -1 }
        if rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max
            _ = setrlimit(resource, &rl)
            guard getrlimit(resource, &rl) == 0 else { return -1 }
        }
        // RLIM_INFINITY is all ones on Linux.
        return rl.rlim_cur >= rlim_t(Int.max) ? Int.max : Int(rl.rlim_cur)
    }
}
