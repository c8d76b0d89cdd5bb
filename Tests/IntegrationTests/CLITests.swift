// The meshq command line against a real meshqd.
import Foundation
import Testing

@Suite(.serialized) struct CLITests {
    static var meshqPath: String {
        URL(fileURLWithPath: Harness.meshqdPath).deletingLastPathComponent().appendingPathComponent("meshq").path
    }

    private func meshq(_ args: [String], stdin: String? = nil, timeout: Double = 60) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.meshqPath)
        p.arguments = args
        let out = Pipe(), err = Pipe(), inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = inp
        try p.run()
        if let stdin { inp.fileHandleForWriting.write(Data(stdin.utf8)) }
        try inp.fileHandleForWriting.close()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    @Test func enqueueWorkStatusRoundTrip() throws {
        let d = try Daemon(name: "cli").start()
        let nodes = "127.0.0.1:\(d.clientPort)"
        let one = try meshq(["enqueue", "--nodes", nodes, "-v", "hello", "world"])
        #expect(one.status == 0)
        #expect(one.out.hasPrefix("OK 1 "))
        #expect(one.err.contains("lamport="))
        let many = try meshq(["enqueue", "--nodes", nodes, "-"], stdin: "a\nb\n\nc\n")
        #expect(many.status == 0)
        #expect(many.out.split(separator: "\n").map { $0.split(separator: " ")[1] } == ["2", "3", "4"])

        let dir = Harness.tempDir("work")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Task 1 is done by the command; "b" makes it fail (NACK), so b comes back.
        let w = try meshq(["work", "--nodes", nodes, "--count", "3", "--wait-ms", "1000",
                           "--exec", "read x; echo \"$x\" >> \(dir)/done; [ \"$x\" != b ]"])
        #expect(w.status == 0, "\(w.err)")
        let done = try String(contentsOfFile: dir + "/done", encoding: .utf8)
        #expect(done == "hello world\na\nb\n")
        let st = try meshq(["status", "--nodes", nodes])
        #expect(st.status == 0)
        let header = st.out.split(separator: "\n")[0].split(separator: " ").map(String.init)
        let row = st.out.split(separator: "\n")[1].split(separator: " ").map(String.init)
        let col = Dictionary(uniqueKeysWithValues: zip(header, row))
        #expect(col["role"] == "leader")
        #expect(col["ready"] == "2")      // b (nacked) and c
        #expect(col["inflight"] == "0")
        let c = try d.client()
        #expect(try c.request("DEQUEUE").hasSuffix(" b"))
    }

    @Test func failuresAndUsageHaveTheirExitCodes() throws {
        let port = Harness.freePort()
        let down = try meshq(["enqueue", "--nodes", "127.0.0.1:\(port)", "x"])
        #expect(down.status == 1)
        #expect(down.err.contains("no node reachable"))
        #expect(try meshq(["enqueue"]).status == 2)
        #expect(try meshq(["bench", "--connections", "0"]).status == 2)
        let st = try meshq(["status", "--nodes", "127.0.0.1:\(port)"])
        #expect(st.status == 1 && st.out.contains("down"))
    }

    @Test func benchVerifiesEveryPayloadAgainstARealNode() throws {
        let d = try Daemon(name: "bench").start()
        let r = try meshq(["bench", "--nodes", "127.0.0.1:\(d.clientPort)", "--messages", "2000",
                           "--connections", "4", "--pipeline", "8", "--payload-bytes", "64"])
        #expect(r.status == 0, "\(r.out)\(r.err)")
        #expect(r.out.contains("| Enqueue | 2000 | 4x8 |"))
        #expect(r.out.contains("| Dequeue+Ack | 2000 | 4x8 |"))
        #expect(r.out.contains("verified: 2000 enqueued, 2000 drained exactly once"))
        #expect(try d.client().request("STATUS").contains(" ready=0 inflight=0 "))
    }
}
