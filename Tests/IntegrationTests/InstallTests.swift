// `make install` lays out what an operator expects, and never overwrites an
// existing configuration.
import Foundation
import MeshQClient
import MeshQTestSupport
import Testing

@Suite(.serialized) struct InstallTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    private func make(_ args: [String]) throws -> (Int32, String) {
        try Harness.run("/usr/bin/env", ["make", "-s", "-C", Self.root] + args)
    }

    @Test func installLaysOutEveryFileAndKeepsAnExistingConfig() throws {
        let dest = Harness.tempDir("install")
        defer { try? FileManager.default.removeItem(atPath: dest) }
        let build = URL(fileURLWithPath: Harness.meshqdPath).deletingLastPathComponent().path
        let (rc, out) = try make(["install-files", "BUILD=\(build)", "DESTDIR=\(dest)"])
        #expect(rc == 0, "\(out)")
        let files = ["usr/local/bin/meshqd", "usr/local/bin/meshq", "lib/systemd/system/meshqd@.service",
                     "usr/lib/sysusers.d/meshq.conf", "etc/meshq/meshq.conf", "usr/local/share/man/man1/meshq.1",
                     "usr/local/share/man/man5/meshq.conf.5", "usr/local/share/man/man8/meshqd.8"]
        for f in files { #expect(FileManager.default.fileExists(atPath: "\(dest)/\(f)"), "missing \(f)") }
        #expect(FileManager.default.isExecutableFile(atPath: "\(dest)/usr/local/bin/meshqd"))
        let unit = try String(contentsOfFile: "\(dest)/lib/systemd/system/meshqd@.service", encoding: .utf8)
        #expect(unit.contains("ExecStart=/usr/local/bin/meshqd --config /etc/meshq/meshq.conf --id %i"))

        // The secrets' directory: 0750, group meshq where that group exists.
        var st = stat()
        #expect(stat("\(dest)/etc/meshq", &st) == 0)
        #expect(st.st_mode & 0o7777 == 0o750)
        if getuid() == 0, let g = getgrnam("meshq") { #expect(st.st_gid == g.pointee.gr_gid && st.st_uid == 0) }
        // The sample config is valid as installed.
        let check = Process()
        check.executableURL = URL(fileURLWithPath: "\(dest)/usr/local/bin/meshqd")
        check.arguments = ["--config", "\(dest)/etc/meshq/meshq.conf", "--id", "2", "--check"]
        check.standardOutput = FileHandle.nullDevice
        try check.run()
        check.waitUntilExit()
        #expect(check.terminationStatus == 0)

        // An operator's edits survive a reinstall; uninstall leaves the config.
        try "# mine\n".write(toFile: "\(dest)/etc/meshq/meshq.conf", atomically: true, encoding: .utf8)
        #expect(try make(["install-files", "BUILD=\(build)", "DESTDIR=\(dest)"]).0 == 0)
        #expect(try String(contentsOfFile: "\(dest)/etc/meshq/meshq.conf", encoding: .utf8) == "# mine\n")
        #expect(try make(["uninstall", "DESTDIR=\(dest)"]).0 == 0)
        #expect(!FileManager.default.fileExists(atPath: "\(dest)/usr/local/bin/meshqd"))
        #expect(FileManager.default.fileExists(atPath: "\(dest)/etc/meshq/meshq.conf"))
    }
}
