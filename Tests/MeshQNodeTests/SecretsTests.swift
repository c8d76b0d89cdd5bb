// Secrets: OpenSSL's HMAC-SHA256 gives the RFC 4231 answers, a peer proof
// binds the secret, the challenge and the direction, and secrets compare
// equal only when they are.
import Testing
@testable import MeshQNode

private func hex(_ b: [UInt8]) -> String {
    b.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}

@Suite struct SecretsTests {
    @Test func hmacMatchesRFC4231() {
        // Test case 2.
        #expect(hex(Secrets.hmacSHA256(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8)))
            == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        // Test case 6: a key longer than the block is hashed first.
        let key = [UInt8](repeating: 0xaa, count: 131)
        let msg = Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8)
        #expect(hex(Secrets.hmacSHA256(key: key, message: msg))
            == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
        #expect(hex(Secrets.sha256(Array("abc".utf8)))
            == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func proofsBindSecretNonceAndDirection() {
        let p = Secrets.peerProof(secret: "s", nonce: [1, 2], from: 1, to: 2)
        #expect(p.count == 32)
        #expect(p == Secrets.peerProof(secret: "s", nonce: [1, 2], from: 1, to: 2))
        #expect(p != Secrets.peerProof(secret: "t", nonce: [1, 2], from: 1, to: 2))
        #expect(p != Secrets.peerProof(secret: "s", nonce: [1, 3], from: 1, to: 2))
        #expect(p != Secrets.peerProof(secret: "s", nonce: [1, 2], from: 2, to: 1))
    }

    @Test func secretsAreEqualOnlyWhenTheyAre() {
        #expect(Secrets.equal([1, 2], [1, 2]))
        #expect(!Secrets.equal([1, 2], [1, 3]))
        #expect(!Secrets.equal([1], [1, 2]))
        #expect(!Secrets.equal([], [0]))
        #expect(Secrets.equal([], []))
    }
}
