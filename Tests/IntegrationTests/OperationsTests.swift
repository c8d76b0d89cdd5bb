// What an operator sees: journald priority prefixes, SIGHUP reloads.
import Foundation
import Glibc
import Reactor
import Testing

@Suite(.serialized) struct OperationsTests {
    /// "dev:inode" of a file, as systemd puts it in $JOURNAL_STREAM.
    private func journalStream(of path: String) -> String {
        var st = stat()
        stat(path, &st)
        return "\(st.st_dev):\(st.st_ino)"
    }

    private func lines(_ log: String) -> [String] { log.split(separator: "\n").map(String.init) }

    @Test func journaldPrefixesMatchTheLevel() throws {
        let d = Daemon(name: "journal")
        FileManager.default.createFile(atPath: d.logPath, contents: nil)
        try d.start(environment: ["JOURNAL_STREAM": journalStream(of: d.logPath)])
        // A warn line: a reload with a broken file.
        try "[cluster\n".write(toFile: d.configPath, atomically: false, encoding: .utf8)
        kill(d.process!.processIdentifier, SIGHUP)
        #expect(Harness.eventually { d.log.contains("event=config_reload_failed") })
        let all = lines(d.log)
        #expect(!all.isEmpty)
        for l in all {
            let ok = (l.hasPrefix("<6>level=info ") || l.hasPrefix("<4>level=warn ") || l.hasPrefix("<7>level=debug ")
                || l.hasPrefix("<5>level=notice ") || l.hasPrefix("<3>level=error "))
            #expect(ok, "line without a matching priority: \(l)")
        }
        #expect(all.contains { $0.hasPrefix("<6>level=info event=node_started ") })
        #expect(all.contains { $0.hasPrefix("<4>level=warn event=config_reload_failed ") })
    }

    @Test func noPrefixesWhenJournalStreamNamesAnotherFile() throws {
        // A child whose stderr was redirected inherits the variable: it must not prefix.
        let d = try Daemon(name: "nojournal").start(environment: ["JOURNAL_STREAM": "1:1"])
        d.stop()
        let all = lines(d.log)
        #expect(!all.isEmpty)
        #expect(all.allSatisfy { $0.hasPrefix("level=") })
    }

    @Test func sighupAppliesANewTimingAndSurvivesABrokenFile() throws {
        let d = try Daemon(name: "hup", cluster: "ack_timeout_ms = 60000").start()
        let c = try d.client()
        // Break the file: the node logs it and keeps serving with the old values.
        let good = try String(contentsOfFile: d.configPath, encoding: .utf8)
        try "ack_timeout_ms = 60000\n".write(toFile: d.configPath, atomically: false, encoding: .utf8)
        kill(d.process!.processIdentifier, SIGHUP)
        #expect(Harness.eventually { d.log.contains("event=config_reload_failed") })
        #expect(try c.request("PING") == "PONG")
        // A shorter lease takes effect for the next DEQUEUE.
        try good.replacingOccurrences(of: "ack_timeout_ms = 60000", with: "ack_timeout_ms = 300")
            .write(toFile: d.configPath, atomically: false, encoding: .utf8)
        kill(d.process!.processIdentifier, SIGHUP)
        #expect(Harness.eventually { d.log.contains("event=config_reloaded") })
        #expect(d.log.contains("ack_timeout_ms=60000->300"))
        #expect(try c.request("ENQUEUE short").hasPrefix("OK 1 "))
        #expect(try c.request("DEQUEUE").hasPrefix("TASK 1 "))
        let other = try d.client()
        let again = try other.request("DEQUEUE 20000")
        #expect(again.hasPrefix("TASK 1 "), "the 300 ms lease should have expired well within 20 s")
    }
}
