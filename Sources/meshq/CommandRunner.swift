// CommandRunner: runs one `meshq work --exec` command with the task's payload
// on its stdin and reports how it exited. Spawned with posix_spawn so the child
// gets SIGPIPE back at its default action (the worker ignores SIGPIPE, and an
// ignored signal would otherwise be inherited through exec: `yes | head` in a
// command would behave differently under meshq). SIGINT and SIGTERM stay
// ignored in the child as in the worker, so Ctrl-C lets the task in hand finish.
// Invariant: nothing the command does to its stdin can end the worker. A
// command that exits or closes stdin before reading the whole payload makes the
// write fail with EPIPE: that only means it did not want (all of) the payload,
// and its exit status alone decides ACK or NACK.
import Glibc

enum CommandRunner {
    struct Outcome {
        /// The exit status, or nil when a signal ended the command.
        var exitStatus: Int32?
        var signal: Int32?
        /// Bytes of the payload the command's stdin took before it closed.
        var payloadBytesWritten: Int
        /// True when the command closed its stdin (or exited) before taking all of the payload.
        var payloadRefused: Bool
        var succeeded: Bool { exitStatus == 0 }

        var summary: String {
            let how = exitStatus.map { "exit=\($0)" } ?? "signal=\(signal ?? 0)"
            return payloadRefused ? "\(how) stdin_closed_after=\(payloadBytesWritten)" : how
        }
    }

    struct SpawnError: Error, CustomStringConvertible {
        let description: String
    }

    /// Runs `command` with `input` on its stdin and the worker's environment
    /// plus `env` (which replaces variables of the same name).
    static func run(_ command: String, input: [UInt8], env: [(String, String)] = []) throws(SpawnError) -> Outcome {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw SpawnError(description: "pipe: \(String(cString: strerror(errno)))") }
        let (readEnd, writeEnd) = (fds[0], fds[1])
        // Neither end may stay open in the command (a kept write end would
        // hide EOF from it); the worker spawns nothing else meanwhile.
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // dup2 onto 0 clears close-on-exec there; both pipe ends close at exec.
        posix_spawn_file_actions_adddup2(&actions, readEnd, 0)

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var toDefault = sigset_t()
        sigemptyset(&toDefault)
        sigaddset(&toDefault, SIGPIPE)
        posix_spawnattr_setsigdefault(&attr, &toDefault)
        var noMask = sigset_t()
        sigemptyset(&noMask)
        posix_spawnattr_setsigmask(&attr, &noMask)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let args: [String] = ["/bin/sh", "-c", command]
        let argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var envLines: [String] = []
        var e = environ
        while let p = e.pointee {
            let line = String(cString: p)
            if !env.contains(where: { line.hasPrefix($0.0 + "=") }) { envLines.append(line) }
            e += 1
        }
        envLines += env.map { "\($0.0)=\($0.1)" }
        let envp: [UnsafeMutablePointer<CChar>?] = envLines.map { strdup($0) } + [nil]
        defer { for v in envp { free(v) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, "/bin/sh", &actions, &attr, argv, envp)
        Glibc.close(readEnd)
        guard rc == 0 else {
            Glibc.close(writeEnd)
            throw SpawnError(description: "cannot run /bin/sh: \(String(cString: strerror(rc)))")
        }

        let (written, refused) = feed(input, to: writeEnd)
        Glibc.close(writeEnd)

        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw SpawnError(description: "waitpid: \(String(cString: strerror(errno)))") }
        }
        // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift does not import.
        let sig = status & 0x7f
        return Outcome(exitStatus: sig == 0 ? (status >> 8) & 0xff : nil, signal: sig == 0 ? nil : sig,
                       payloadBytesWritten: written, payloadRefused: refused)
    }

    /// Writes the payload until it is all taken or the reader is gone (EPIPE).
    private static func feed(_ input: [UInt8], to fd: Int32) -> (written: Int, refused: Bool) {
        var off = 0
        while off < input.count {
            let n = input.withUnsafeBytes { raw in write(fd, raw.baseAddress! + off, raw.count - off) }
            if n > 0 {
                off += n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                // EPIPE: the command closed its stdin or exited. Any other error
                // is as final for the payload; the exit status still decides.
                return (off, true)
            }
        }
        return (off, false)
    }
}
