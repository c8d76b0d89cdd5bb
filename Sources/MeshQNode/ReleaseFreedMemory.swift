// ReleaseFreedMemory: glibc's malloc_trim(0), which returns to the kernel the
// free pages inside the heap (not only at its top). A node calls it once after
// recovery: replaying a big log allocates and frees hundreds of megabytes
// (the file read whole, the decoded records, the growing replay window), and
// without it those pages stay resident beside the queue they built.
// malloc.h is not in Swift's Glibc module, so the symbol is looked up at run
// time; on a libc without it this does nothing.
import Glibc

enum ReleaseFreedMemory {
    private typealias Trim = @convention(c) (Int) -> Int32

    private static let trim: Trim? = {
        guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return nil }
        return unsafeBitCast(sym, to: Trim.self)
    }()

    static func now() {
        _ = trim?(0)
    }
}
