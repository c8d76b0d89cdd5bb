// StopFlag: set by SIGINT/SIGTERM, read by loops that stop only at a safe
// point (between tasks, after children exited). The signals are ignored at
// the process level and observed through Dispatch, so they never kill us
// mid-task.
import Dispatch
import Foundation
import Glibc
import Reactor

final class StopFlag: @unchecked Sendable {
    private var sources: [DispatchSourceSignal] = []
    private let lock = NSLock()
    private var flag = false

    var requested: Bool { lock.withLock { flag } }

    init(message: String? = nil) {
        for sig in [SIGINT, SIGTERM] {
            ProcessSignals.ignore(sig)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { [weak self] in
                self?.lock.withLock { self?.flag = true }
                if let message { FileOut.stderr(message) }
            }
            s.resume()
            sources.append(s)
        }
    }
}
