// meshqd's command line as ArgumentParser reads it: the flags of
// man/meshqd.8, and usage errors that MeshQD.main turns into exit 2 with the
// message printed here (DaemonLifecycleTests runs the binary).
import ArgumentParser
@testable import meshqd
import Testing

@Suite struct CommandLineTests {
    @Test func flagsAndDefaults() throws {
        let d = try MeshQD.parse([])
        #expect(d.config == "/etc/meshq/meshq.conf")
        #expect(d.id == nil && !d.check && !d.repair)
        let a = try MeshQD.parse(["--config", "/tmp/a.conf", "--id", "3", "--check", "--repair"])
        #expect(a.config == "/tmp/a.conf" && a.id == 3 && a.check && a.repair)
        let b = try MeshQD.parse(["-c", "/tmp/b.conf", "--id=2"])
        #expect(b.config == "/tmp/b.conf" && b.id == 2 && !b.check)
        #expect(try MeshQD.parse(["--config=/tmp/c.conf"]).config == "/tmp/c.conf")
    }

    @Test(arguments: [
        (["--bogus"], "Unknown option '--bogus'"),
        (["extra"], "Unexpected argument 'extra'"),
        (["--id"], "Missing value for '--id <N>'"),
        (["--config"], "Missing value for '--config <FILE>'"),
        (["--id", "x"], "The value 'x' is invalid for '--id <N>': node ids are positive integers"),
        (["--id", "0"], "The value '0' is invalid for '--id <N>': node ids are positive integers"),
        (["--id=-4"], "The value '-4' is invalid for '--id <N>': node ids are positive integers"),
    ])
    func usageErrorsAreValidationFailures(args: [String], says: String) {
        do {
            _ = try MeshQD.parse(args)
            Issue.record("\(args) parsed")
        } catch {
            // MeshQD.main maps exactly this code to exit 2.
            #expect(MeshQD.exitCode(for: error) == .validationFailure)
            let message = MeshQD.fullMessage(for: error)
            #expect(message.contains(says), "\(args): \(message)")
            #expect(message.contains("Usage: meshqd"), "\(args): \(message)")
        }
    }

    @Test func helpIsACleanExit() {
        for flag in ["--help", "-h"] {
            do {
                _ = try MeshQD.parse([flag])
                Issue.record("\(flag) parsed")
            } catch {
                #expect(MeshQD.exitCode(for: error) == .success)
                let help = MeshQD.fullMessage(for: error)
                for option in ["--config <FILE>", "--id <N>", "--check", "--repair"] {
                    #expect(help.contains(option), "\(flag) lacks \(option): \(help)")
                }
            }
        }
    }
}
