// DiskErrorReport: the log lines an operator gets when storage fails, in one
// place so every path says the same thing. A full disk is `disk_full`, any
// other failed call `disk_error` with the call (`op=`) and `errno=`; both at
// error level, and the node stops (the caller's fatal path), because after a
// failed fsync nothing can be trusted to be on disk and retrying it would
// hide the loss. Corruption is `log_corrupt` naming the file and the byte
// offset; without --repair the node refuses to start and says how to recover.
import MeshQStorage

enum DiskErrorReport {
    static func log(_ e: StorageError, logger: Logger, node: String) {
        var fields = [("node", node)]
        if let op = e.op { fields.append(("op", op)) }
        if let name = e.errnoName { fields.append(("errno", name)) }
        if let path = e.path { fields.append(("path", path)) }
        fields.append(("error", e.description))
        if e.isDiskFull {
            fields.append(("action", e.recoverable ? "nothing of the batch is on disk; not acknowledged" : "stopping"))
            logger.log(.error, "disk_full", fields)
        } else {
            fields.append(("action", "stopping; a failed write or fsync is never retried"))
            logger.log(.error, "disk_error", fields)
        }
    }

    /// In a cluster: the damaged write and what follows are set aside and the
    /// node starts catching up (no vote) from the leader.
    static func rejoining(_ c: DurableLog.Corruption, aside: String, logger: Logger, node: String) {
        logger.log(.error, "log_corrupt", [
            ("node", node), ("file", c.file), ("offset", "\(c.offset)"), ("unreadable_bytes", "\(c.bytesAfter)"),
            ("moved_to", aside),
            ("action", "rejoin: starting with the records before byte \(c.writeStart); this node will not vote "
                + "until it holds the leader's log (event rejoined)"),
        ])
    }

    /// Logs the corruption and the way out; returns meshqd's exit status.
    static func refuse(_ c: DurableLog.Corruption, logger: Logger, node: String, dataDir: String) -> Int32 {
        logger.log(.error, "log_corrupt", [
            ("node", node), ("file", c.file), ("offset", "\(c.offset)"), ("unreadable_bytes", "\(c.bytesAfter)"),
            ("error", "\(c.file) is damaged at byte \(c.offset) and valid records follow: this is not a torn write, "
                + "and records this node acknowledged may be unreadable; refusing to start"),
            ("recover", "restart with 'meshqd --repair' to keep the records before byte \(c.writeStart) (where the damaged "
                + "write starts) and move the rest to "
                + "\(c.file).corrupt-at-\(c.offset) (the tasks in the damaged part are lost), or move \(dataDir) aside "
                + "and restore it from a backup"),
        ])
        return 1
    }

    static func voteMissing(logger: Logger, node: String, dataDir: String) -> Int32 {
        logger.log(.error, "recovery_failed", [
            ("node", node),
            ("error", "\(dataDir)/vote is missing but \(dataDir)/lamport shows this data_dir was initialised with one: "
                + "the node may have voted, and starting as if it never had could let it vote twice in one epoch; refusing to start"),
            ("recover", "read the cluster's current epoch E (STATUS epoch= on the leader) and write "
                + "'<E+1> <E>' into \(dataDir)/vote (no checksum needed; the next vote rewrites it with one)"),
        ])
        return 1
    }

    static func repaired(_ c: DurableLog.Corruption, aside: String, logger: Logger, node: String) {
        logger.log(.error, "log_corrupt", [("node", node), ("file", c.file), ("offset", "\(c.offset)"),
                                           ("unreadable_bytes", "\(c.bytesAfter)"), ("moved_to", aside),
                                           ("action", "repair: starting with the records before the damage")])
    }
}
