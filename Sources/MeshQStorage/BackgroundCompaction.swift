// BackgroundCompaction: one snapshot being encoded, written and fsynced to its
// `.tmp` file on a thread of its own, and the batches the log synced meanwhile
// (`carry`, touched only by the log's thread). The thread shares nothing with
// the log but the outcome, under a lock. The file is not committed here: the
// log appends the carry and renames it (DurableLog+Compaction). Disk faults
// injected for tests (DiskFaults) are not applied on this thread.
import Foundation
import Glibc
import SystemPackage

final class BackgroundCompaction: @unchecked Sendable {
    let tmpPath: String
    let tailCount: Int
    /// Batches synced to the old log since the image was taken, as written.
    private(set) var carried: [UInt8] = []
    private(set) var carriedRecords = 0
    private let lock = NSLock()
    private var result: Result<Void, StorageError>?
    private let done = DispatchSemaphore(value: 0)

    init(tmpPath: String, tail: [[UInt8]], encode: @escaping @Sendable () -> [UInt8]) {
        self.tmpPath = tmpPath
        tailCount = tail.count
        let thread = Thread { [self] in
            BackgroundCompaction.yieldToTheEventLoop()
            let r = BackgroundCompaction.write(DurableLog.snapshotFile(encode(), tail: tail), to: tmpPath)
            lock.withLock { result = r }
            done.signal()
        }
        thread.name = "meshq-compaction"
        thread.start()
    }

    func carry(_ batch: [UInt8], records: Int) {
        carried.append(contentsOf: batch)
        carriedRecords += records
    }

    /// Nil while the thread is writing.
    var outcome: Result<Void, StorageError>? { lock.withLock { result } }

    func wait() -> Result<Void, StorageError> {
        done.wait()
        done.signal()
        return outcome!
    }

    /// This thread runs at nice 10 (on Linux, nice is per thread and `who`
    /// 0 is the calling thread): encoding a
    /// snapshot of millions of tasks takes seconds of CPU, and at the same
    /// nice it took half of what the event loop needed on a busy machine,
    /// long enough for its peers to find it silent. At nice 10 the loop
    /// gets about nine tenths of a shared core; the compaction still
    /// progresses (the log keeps growing until it is done).
    private static func yieldToTheEventLoop() {
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
    }

    private static func write(_ pieces: [[UInt8]], to tmp: String) -> Result<Void, StorageError> {
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(tmp, .writeOnly, options: [.create, .truncate, .closeOnExec],
                                         permissions: [.ownerReadWrite])
        } catch {
            return .failure(StorageError("cannot create", tmp, error, op: "open"))
        }
        defer { try? fd.close() }
        do {
            for piece in pieces { _ = try fd.writeAll(piece) }
        } catch {
            let err = StorageError("write failed on", tmp, error, op: "write")
            // No room: nothing changed, the old log goes on; its space comes back with the file.
            if err.isDiskFull && unlink(tmp) == 0 { return .failure(err.rolledBack()) }
            return .failure(err)
        }
        guard Glibc.fsync(fd.rawValue) == 0 else { return .failure(StorageError.errno("fsync failed on", tmp, op: "fsync")) }
        return .success(())
    }
}
