// The client protocol against a real meshqd, as a netcat user would drive it.
import Foundation
import Reactor
import MeshQClient
import MeshQTestSupport
import Testing

@Suite(.serialized) struct ProtocolSessionTests {
    @Test func netcatSessionOfEveryVerb() throws {
        let d = try Daemon(name: "verbs").start()
        let c = try d.client()
        let script = [
            "HELLO tester 100", "PING", "HELP", "ENQUEUE hello world", "ENQUEUE  spaced  payload ",
            "DEQUEUE", "NACK 1", "DEQUEUE", "ACK 1", "ACK 1", "NACK 1", "DEQUEUE 0", "STATUS",
            "FROB", "ACK abc", "DEQUEUE -5", "ENQUEUE", "ping\r", "",
        ]
        try c.send(script.joined(separator: "\n") + "\n")
        var r: [String] = []
        for _ in 0..<(script.count - 1) { r.append(try c.readLine()) }   // the blank line has no reply
        #expect(r[0].hasPrefix("HELLO 1 ") && r[0].hasSuffix(" meshq/2"))
        let helloLamport = UInt64(r[0].split(separator: " ")[2])!
        #expect(helloLamport > 100)
        #expect(r[1] == "PONG")
        #expect(r[2].hasPrefix("HELP ") && r[2].contains("ENQUEUE") && r[2].contains("DEQUEUE"))
        #expect(r[3].hasPrefix("OK 1 "))
        #expect(r[4].hasPrefix("OK 2 "))
        #expect(r[5].hasPrefix("TASK 1 ") && r[5].hasSuffix(" hello world"))
        #expect(r[6].hasPrefix("OK 1 "))
        #expect(r[7].hasPrefix("TASK 1 "))                  // NACKed task comes back first
        #expect(r[8].hasPrefix("OK 1 "))
        #expect(r[9].hasPrefix("ERR NOTFOUND "))
        #expect(r[10].hasPrefix("ERR NOTFOUND "))
        let t2 = r[11].split(separator: " ", maxSplits: 3).map(String.init)
        #expect(t2[0] == "TASK" && t2[1] == "2" && t2[3] == " spaced  payload ")
        #expect(r[12].hasPrefix("STATUS id=1 role=leader leader=1 epoch=1 lamport="))
        #expect(r[12].contains(" ready=0 inflight=1 mailbox=0 "))
        #expect(r[13].hasPrefix("ERR BADCMD "))
        #expect(r[14].hasPrefix("ERR BADARG "))
        #expect(r[15].hasPrefix("ERR BADARG "))
        #expect(r[16].hasPrefix("ERR BADARG "))
        #expect(r[17] == "PONG")
        // Lamport stamps only grow along the session.
        let stamps = r.compactMap { line -> UInt64? in
            let p = line.split(separator: " ")
            guard p.count >= 3, p[0] == "OK" || p[0] == "TASK" else { return nil }
            return UInt64(p[2])
        }
        #expect(stamps == stamps.sorted() && Set(stamps).count == stamps.count)
        #expect(try c.request("QUIT") == "BYE")
        #expect(try c.readToEnd() == "")
    }

    @Test func tenThousandPipelinedEnqueuesInOneWriteAnswerInOrder() throws {
        let d = try Daemon(name: "pipeline").start()
        let c = try d.client(timeoutMs: 60_000)
        let n = 10_000
        let replies = try c.pipeline((1...n).map { "ENQUEUE task-\($0)" })
        for (i, r) in replies.enumerated() {
            let p = r.split(separator: " ")
            guard p.count == 3, p[0] == "OK", p[1] == "\(i + 1)" else {
                Issue.record("reply \(i): \(r)")
                return
            }
        }
        let st = try c.request("STATUS")
        #expect(st.contains(" ready=\(n) "))
        // And they come out in the same order.
        let tasks = try c.pipeline(Array(repeating: "DEQUEUE", count: 3))
        #expect(tasks.map { $0.split(separator: " ").last.map(String.init) } == ["task-1", "task-2", "task-3"])
    }

    @Test func oversizeLineIsRefusedAndTheConnectionGoesOn() throws {
        let d = try Daemon(name: "toolarge", cluster: "max_payload_bytes = 100").start()
        let c = try d.client()
        let big = "ENQUEUE " + String(repeating: "x", count: 5_000)
        let r = try c.pipeline(["PING", big, "ENQUEUE " + String(repeating: "y", count: 101), "ENQUEUE ok"])
        #expect(r[0] == "PONG")
        #expect(r[1].hasPrefix("ERR TOOLARGE "))
        #expect(r[2].hasPrefix("ERR TOOLARGE "))
        #expect(r[3].hasPrefix("OK 1 "))
    }

    @Test func expiredLeaseIsDeliveredAgain() throws {
        let d = try Daemon(name: "lease", cluster: "ack_timeout_ms = 400").start()
        let a = try d.client()
        let b = try d.client()
        #expect(try a.request("ENQUEUE once").hasPrefix("OK 1 "))
        #expect(try a.request("DEQUEUE").hasPrefix("TASK 1 "))
        #expect(try b.request("DEQUEUE") == "EMPTY")
        // b blocks until a's lease runs out, then gets the same task.
        let again = try b.request("DEQUEUE 20000")
        #expect(again.hasPrefix("TASK 1 ") && again.hasSuffix(" once"))
        #expect(d.log.contains("event=task_requeued"))
        // a's late ACK still completes the work (a ready/leased task may be acked).
        #expect(try a.request("ACK 1").hasPrefix("OK 1 "))
        #expect(try b.request("ACK 1").hasPrefix("ERR NOTFOUND"))
    }

    @Test func blockingDequeueWakesOnEnqueueFromAnotherClient() throws {
        let d = try Daemon(name: "wait").start()
        let consumer = try d.client()
        let producer = try d.client()
        try consumer.send("DEQUEUE 20000\nPING\n")
        #expect(try producer.request("ENQUEUE wake up").hasPrefix("OK 1 "))
        #expect(try consumer.readLine().hasSuffix(" wake up"))
        #expect(try consumer.readLine() == "PONG")
        #expect(try consumer.request("DEQUEUE 50") == "EMPTY")
    }

    @Test func authIsRequiredWhenTheClusterSetsAToken() throws {
        let d = try Daemon(name: "auth", cluster: "client_token = s3cret").start()
        let c = try d.client()
        let r = try c.pipeline(["ENQUEUE x", "PING", "AUTH wrong", "STATUS", "AUTH s3cret", "ENQUEUE x"])
        #expect(r[0].hasPrefix("ERR AUTH "))
        #expect(r[1] == "PONG")
        #expect(r[2].hasPrefix("ERR AUTH "))
        #expect(r[3].hasPrefix("ERR AUTH "))
        #expect(r[4] == "OK")
        #expect(r[5].hasPrefix("OK 1 "))
    }

    @Test func connectionsPastTheLimitGetBusy() throws {
        let d = try Daemon(name: "busy", cluster: "max_connections = 2").start()
        // The harness's readiness probe closed its connection; the server may
        // not have noticed yet, so take each slot once it is really ours.
        func hold() -> LineClient? {
            var held: LineClient?
            Harness.eventually {
                guard let c = try? d.client(), (try? c.request("PING")) == "PONG" else { return false }
                held = c
                return true
            }
            return held
        }
        let a = try #require(hold())
        let b = try #require(hold())
        let third = try d.client()
        let line = try third.readToEnd()
        #expect(line.hasPrefix("ERR BUSY "))
        #expect(try a.request("PING") == "PONG")
        #expect(try b.request("PING") == "PONG")
    }

    @Test func manyConcurrentConnections() throws {
        let d = try Daemon(name: "conns").start()
        var clients: [LineClient] = []
        for _ in 0..<500 { clients.append(try d.client()) }
        for (i, c) in clients.enumerated() { try c.send("ENQUEUE c\(i)\n") }
        for c in clients { #expect(try c.readLine().hasPrefix("OK ")) }
        #expect(try clients[0].request("STATUS").contains(" ready=500 "))
    }
}
