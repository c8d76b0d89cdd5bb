// StdinTasks: `meshq enqueue -` and `meshq put -`: one task per non-empty
// stdin line, pipelined to the cluster in batches of 1,000, one stdout line
// per task in order (the reply, `UNKNOWN <node> <reason>` or `NOTSENT
// <reason>`). A task that no node took ends the run: the lines after its
// batch are not even read. Lines whose outcome is unknown are sent again only
// with `resendUnknown` (why a repeat is harmless: a key).

struct StdinTasks {
    struct Outcome {
        var total = 0
        var failed = 0
        /// Line numbers whose outcome is unknown.
        var unknown: [Int] = []
        /// The first line no node took, if any (the run stopped after its batch).
        var notSent: Int?
        var lastLine = 0
    }

    /// Sends every stdin line as `command(lineNumber, text)`; `notDone` says
    /// what did not happen to a task no node took ("enqueued", "put").
    static func send(_ client: QueueClient, resendUnknown: String?, notDone: String,
                     command: (Int, String) -> String) -> Outcome {
        var o = Outcome()
        var batch: [(line: Int, task: String)] = []
        func flush() {
            let results = client.pipeline(batch.map { command($0.line, $0.task) }, resendUnknown: resendUnknown)
            for (b, result) in zip(batch, results) {
                switch result {
                case .reply(let r):
                    print(r)
                    if r.hasPrefix("ERR") { o.failed += 1 }
                case .unknown(let u):
                    print("UNKNOWN \(u.node) \(u.reason)")
                    FileOut.stderr("meshq: line \(b.line) \(EnqueueCommand.quoted(b.task)) at \(u.node): outcome unknown (\(u.reason))")
                    o.unknown.append(b.line)
                case .notSent(let why):
                    print("NOTSENT \(why)")
                    FileOut.stderr("meshq: line \(b.line) \(EnqueueCommand.quoted(b.task)): not \(notDone) (\(why))")
                    o.notSent = o.notSent ?? b.line
                    o.failed += 1
                }
            }
            batch.removeAll()
        }
        while o.notSent == nil, let line = readLine(strippingNewline: true) {
            o.lastLine += 1
            if line.isEmpty { continue }
            o.total += 1
            batch.append((o.lastLine, line))
            if batch.count == 1_000 { flush() }
        }
        if o.notSent == nil, !batch.isEmpty { flush() }
        return o
    }

    /// "lines 3, 9, ..." for the summary of unknown outcomes.
    static func lineList(_ unknown: [Int]) -> String {
        unknown.prefix(20).map(String.init).joined(separator: ", ") + (unknown.count > 20 ? ", ..." : "")
    }
}
