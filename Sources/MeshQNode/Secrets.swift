// Secrets: the peer handshake's proof of cluster_secret and the comparison of
// secrets, through the system OpenSSL that TLS already links (libcrypto's
// HMAC, SHA256 and CRYPTO_memcmp). No cryptography of our own.
// Invariant: a comparison of secrets takes the same time wherever the inputs
// differ, whatever their lengths (both sides are hashed to 32 bytes first,
// then compared with CRYPTO_memcmp).
import CLibevent
import MeshQCore

enum Secrets {
    /// HMAC-SHA256(key, message) (RFC 2104 with FIPS 180-4's SHA-256).
    static func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let done = key.withUnsafeBytes { k in
            message.withUnsafeBytes { m in
                out.withUnsafeMutableBufferPointer { o in
                    HMAC(EVP_sha256(), k.baseAddress, Int32(k.count),
                         m.baseAddress?.assumingMemoryBound(to: UInt8.self), m.count, o.baseAddress, &length)
                }
            }
        }
        // Only a broken libcrypto fails here (no memory, no SHA-256).
        precondition(done != nil && length == 32, "OpenSSL HMAC-SHA256 failed")
        return Array(out.prefix(Int(length)))
    }

    /// The proof a dialer sends: binds the secret to this challenge and this
    /// direction, so it cannot be replayed on another connection or link.
    static func peerProof(secret: String, nonce: [UInt8], from: Int, to: Int) -> [UInt8] {
        hmacSHA256(key: Array(secret.utf8), message: PeerEnvelope.proofMessage(nonce: nonce, from: from, to: to))
    }

    /// Whether two secrets (tokens, proofs) are equal, in time that does not
    /// depend on where they first differ or on their lengths.
    static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        let ha = sha256(a), hb = sha256(b)
        let same = ha.withUnsafeBytes { x in hb.withUnsafeBytes { y in CRYPTO_memcmp(x.baseAddress, y.baseAddress, 32) } }
        return same == 0
    }

    static func sha256(_ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        data.withUnsafeBytes { d in
            out.withUnsafeMutableBufferPointer { o in
                _ = SHA256(d.baseAddress?.assumingMemoryBound(to: UInt8.self), d.count, o.baseAddress)
            }
        }
        return out
    }
}
