// TLSContext: one OpenSSL SSL_CTX built from PEM files, for libevent's
// OpenSSL bufferevents (Connection) and for blocking clients. All the crypto
// is OpenSSL's; this file only loads files and sets policy: TLS 1.2 or newer,
// the certificate chain and key checked against each other at load time, and
// with a CA file every peer certificate verified against it (with
// `requirePeerCertificate` a peer that presents none is refused too: mutual
// TLS). Invariant: a context is immutable once built, so a reload (SIGHUP)
// builds a new one for new connections and connections already open keep
// theirs (each SSL holds its own reference to its SSL_CTX).
import CLibevent
import Glibc

public final class TLSContext: @unchecked Sendable {
    let ctx: OpaquePointer

    /// - certificate/privateKey: PEM files (a chain may follow the leaf);
    ///   nil for a client that presents no certificate.
    /// - trustedCA: PEM file of the CA(s) peer certificates must chain to;
    ///   nil verifies nothing (a server whose clients need no certificate).
    public init(certificate: String?, privateKey: String?, trustedCA: String?,
                requirePeerCertificate: Bool = false) throws(TLSLoadError) {
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(TLS_method()) else { throw TLSLoadError(file: nil, message: TLSContext.lastError()) }
        self.ctx = ctx
        _ = meshq_ssl_ctx_min_tls12(ctx)
        meshq_ssl_ctx_partial_writes(ctx)
        meshq_ssl_ctx_ignore_unexpected_eof(ctx)
        if let certificate {
            guard SSL_CTX_use_certificate_chain_file(ctx, certificate) == 1 else {
                throw TLSLoadError(file: certificate, message: "cannot load the certificate: \(TLSContext.lastError())")
            }
        }
        if let privateKey {
            guard SSL_CTX_use_PrivateKey_file(ctx, privateKey, SSL_FILETYPE_PEM) == 1 else {
                throw TLSLoadError(file: privateKey, message: "cannot load the private key: \(TLSContext.lastError())")
            }
            guard SSL_CTX_check_private_key(ctx) == 1 else {
                throw TLSLoadError(file: privateKey,
                                   message: "the key does not match the certificate \(certificate ?? "-"): \(TLSContext.lastError())")
            }
        }
        if let trustedCA {
            guard SSL_CTX_load_verify_locations(ctx, trustedCA, nil) == 1 else {
                throw TLSLoadError(file: trustedCA, message: "cannot load the CA certificates: \(TLSContext.lastError())")
            }
            let mode = SSL_VERIFY_PEER | (requirePeerCertificate ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0)
            SSL_CTX_set_verify(ctx, mode, nil)
        } else {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
        }
    }

    deinit { SSL_CTX_free(ctx) }

    /// A new SSL object; `expectedHost` (a client's view of the server)
    /// turns on SNI and checks the certificate names that host or IP address.
    func makeSSL(expectedHost: String? = nil) -> OpaquePointer? {
        guard let ssl = SSL_new(ctx) else { return nil }
        if let host = expectedHost, !host.isEmpty {
            if TLSContext.isIPAddress(host) {
                X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host)
            } else {
                _ = meshq_ssl_set_sni(ssl, host)
                _ = SSL_set1_host(ssl, host)
            }
        }
        return ssl
    }

    static func isIPAddress(_ host: String) -> Bool {
        var buf = [UInt8](repeating: 0, count: 16)
        return inet_pton(AF_INET, host, &buf) == 1 || inet_pton(AF_INET6, host, &buf) == 1
    }

    /// Drains OpenSSL's error queue of this thread into one line.
    static func lastError() -> String {
        var parts: [String] = []
        while true {
            let e = ERR_get_error()
            if e == 0 { break }
            parts.append(describe(e))
        }
        return parts.isEmpty ? "unknown OpenSSL error" : parts.joined(separator: "; ")
    }

    /// An OpenSSL library error (not a bare SSL_get_error code).
    static func isLibraryError(_ code: UInt) -> Bool { code > 0xFF }

    static func describe(_ code: UInt) -> String {
        if let r = ERR_reason_error_string(code) { return String(cString: r) }
        var buf = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buf, buf.count)
        let bytes = buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Why certificate verification failed on `ssl`, or nil when it did not.
    static func verifyFailure(_ ssl: OpaquePointer) -> String? {
        let r = SSL_get_verify_result(ssl)
        guard r != X509_V_OK else { return nil }
        return String(cString: X509_verify_cert_error_string(r))
    }
}

/// Why a context could not be built, and which file was at fault.
public struct TLSLoadError: Error, Sendable, CustomStringConvertible {
    public let file: String?
    public let message: String
    public var description: String { file.map { "\($0): \(message)" } ?? message }
}

/// A blocking TLS session over a connected socket, for clients that wait
/// with poll(2) (LineClient). Non-blocking fd underneath: every call that
/// OpenSSL says would block waits for the direction it names, with a deadline.
public final class BlockingTLS {
    private let ssl: OpaquePointer
    private let fd: Int32

    /// Runs the handshake; throws with the reason (e.g. certificate verify failed).
    public init(context: TLSContext, fd: Int32, serverName: String, timeoutMs: Int) throws(ReactorError) {
        ERR_clear_error()
        guard let ssl = context.makeSSL(expectedHost: serverName) else {
            throw ReactorError("TLS: \(TLSContext.lastError())")
        }
        self.ssl = ssl
        self.fd = fd
        SSL_set_fd(ssl, fd)
        SSL_set_connect_state(ssl)
        while true {
            let rc = SSL_connect(ssl)
            if rc == 1 { break }
            if let why = TLSContext.verifyFailure(ssl) {
                throw ReactorError("TLS handshake with \(serverName): certificate verify failed: \(why)")
            }
            switch try waitFor(rc, timeoutMs: timeoutMs, what: "TLS handshake with \(serverName)") {
            case .again: continue
            case .closed: throw ReactorError("TLS handshake with \(serverName): the server closed the connection")
            }
        }
    }

    deinit { SSL_free(ssl) }

    private enum Progress { case again, closed }

    private func waitFor(_ rc: Int32, timeoutMs: Int, what: String) throws(ReactorError) -> Progress {
        let err = SSL_get_error(ssl, rc)
        let events: Int16
        switch err {
        case SSL_ERROR_WANT_READ: events = Int16(POLLIN)
        case SSL_ERROR_WANT_WRITE: events = Int16(POLLOUT)
        case SSL_ERROR_ZERO_RETURN: return .closed
        case SSL_ERROR_SYSCALL:
            if errno == EINTR { return .again }
            let e = ERR_peek_error()
            if e == 0 && (rc == 0 || errno == 0 || errno == ECONNRESET) { return .closed }
            throw ReactorError("\(what): \(e == 0 ? String(cString: strerror(errno)) : TLSContext.lastError())")
        default:
            throw ReactorError("\(what): \(TLSContext.lastError())")
        }
        var p = pollfd(fd: fd, events: events, revents: 0)
        while true {
            let n = poll(&p, 1, Int32(timeoutMs))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw ReactorError("\(what): timed out after \(timeoutMs) ms") }
            return .again
        }
    }

    /// Writes all of `bytes`.
    public func write(_ bytes: [UInt8], timeoutMs: Int) throws(ReactorError) {
        var off = 0
        while off < bytes.count {
            ERR_clear_error()
            let n = bytes.withUnsafeBytes { raw in SSL_write(ssl, raw.baseAddress! + off, Int32(raw.count - off)) }
            if n > 0 {
                off += Int(n)
                continue
            }
            if try waitFor(n, timeoutMs: timeoutMs, what: "TLS write") == .closed {
                throw ReactorError("TLS write: the server closed the connection")
            }
        }
    }

    /// Appends what arrives to `into`; returns false when the server closed.
    public func read(into buffer: inout [UInt8], timeoutMs: Int) throws(ReactorError) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            ERR_clear_error()
            let n = chunk.withUnsafeMutableBytes { raw in SSL_read(ssl, raw.baseAddress!, Int32(raw.count)) }
            if n > 0 {
                buffer.append(contentsOf: chunk[0..<Int(n)])
                return true
            }
            if try waitFor(n, timeoutMs: timeoutMs, what: "TLS read") == .closed { return false }
        }
    }

    /// Sends close_notify (best effort; the socket is closed by the owner).
    public func shutdown() {
        _ = SSL_shutdown(ssl)
    }
}
