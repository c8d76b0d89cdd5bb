// The durable mailbox with real processes: an ENQUEUE that finds no leader is
// parked (QUEUED), survives a crash of the node holding it, and is delivered
// exactly once when a leader appears.
import Foundation
import Glibc
import Reactor
import MeshQClient
import MeshQTestSupport
import Testing

@Suite(.serialized) struct MailboxTests {
    private static let timings = """
        heartbeat_interval_ms = 50
        leader_timeout_ms = 400
        election_timeout_ms = 200
        commit_timeout_ms = 500
        """

    private func mailbox(_ c: Cluster, _ id: Int) -> String? { c.status(id)?["mailbox"] }

    @Test func aParkedTaskSurvivesACrashAndIsDeliveredExactlyOnce() throws {
        let c = Cluster(name: "mailbox", cluster: Self.timings)
        try c.start()
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        c.kill9(3)
        c.kill9(2)

        // No leader can be reached: after commit_timeout_ms the task is parked.
        let reply = try LineClient(host: "127.0.0.1", port: c.clientPorts[1]!, timeoutMs: 30_000)
            .request("ENQUEUE parked-task")
        let words = reply.split(separator: " ")
        #expect(words.count == 3 && words[0] == "QUEUED" && words[1].hasPrefix("1-"), "got \(reply)")
        #expect(mailbox(c, 1) == "1")
        #expect(c.log(1).contains("event=mailbox_park node=1 ref=\(words.count > 1 ? words[1] : "")"))

        // The node holding it crashes and comes back, still alone: still parked.
        c.kill9(1)
        try c.start([1])
        #expect(mailbox(c, 1) == "1")

        // A majority returns: the task reaches the leader, once.
        try c.start([2, 3])
        let delivered = Harness.eventually(timeout: 30) { mailbox(c, 1) == "0" }
        #expect(delivered, "still parked: \(c.status(1) ?? [:])")
        #expect(c.log(1).contains("event=mailbox_deliver node=1"))
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        let client = try c.client(2)
        let task = try client.request("DEQUEUE")
        #expect(task.hasPrefix("TASK ") && task.hasSuffix(" parked-task"), "got \(task)")
        #expect(try client.request("DEQUEUE") == "EMPTY")
        let id = task.split(separator: " ")[1]
        #expect(try client.request("ACK \(id)").hasPrefix("OK "))
    }
}
