// TLSSetup: builds this node's OpenSSL contexts from the files its config
// names (TLSConfig), at start, for `meshqd --check`, and again at SIGHUP.
// Every failure is a config error naming the config file, the line and the
// key that named the bad file (missing, unreadable, not PEM, a key that does
// not match its certificate). Two contexts: the peer one does mutual TLS
// (presents our certificate, requires the peer's, verified against tls_ca)
// in both directions; the client-port one presents our certificate and asks
// clients for none.
import Glibc
import MeshQCore
import Reactor

public struct TLSContexts {
    /// Peer links (nil: plain).
    public var peer: TLSContext?
    /// The `client_tls` port (nil: none).
    public var client: TLSContext?

    public init(peer: TLSContext? = nil, client: TLSContext? = nil) {
        self.peer = peer
        self.client = client
    }
}

public enum TLSSetup {
    public static func load(_ tls: TLSConfig, configFile: String) -> Result<TLSContexts, ConfigError> {
        guard tls.any else { return .success(TLSContexts()) }
        let files = [tls.ca, tls.cert, tls.key].compactMap { $0 }
        for f in files {
            if let why = unreadable(f.path) {
                return .failure(ConfigError(file: configFile, line: f.line, key: f.key, message: "\(f.path): \(why)"))
            }
        }
        func fail(_ e: TLSLoadError) -> ConfigError {
            let at = files.first { $0.path == e.file } ?? tls.cert!
            return ConfigError(file: configFile, line: at.line, key: at.key, message: "\(e)")
        }
        var out = TLSContexts()
        do {
            if tls.peerTLS {
                out.peer = try TLSContext(certificate: tls.cert!.path, privateKey: tls.key!.path,
                                          trustedCA: tls.ca!.path, requirePeerCertificate: true)
            }
            if tls.clientTLS != nil {
                out.client = try TLSContext(certificate: tls.cert!.path, privateKey: tls.key!.path, trustedCA: nil)
            }
        } catch {
            return .failure(fail(error))
        }
        return .success(out)
    }

    /// nil when the file can be read; else why not.
    static func unreadable(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            return errno == ENOENT ? "no such file" : String(cString: strerror(errno))
        }
        close(fd)
        return nil
    }
}

extension TLSSetup {
    /// SIGHUP: reads the key files again and hands new contexts to the
    /// listeners and the peer dialer (open connections keep theirs). A bad
    /// file keeps the old certificates and logs why; turning TLS on or off,
    /// or moving the TLS port, needs a restart and is logged as such.
    static func reload(from new: MeshQConfig, running: TLSConfig, nodeId: Int, configFile: String,
                       server: NodeServer, transport: PeerTransport?, logger: Logger) {
        guard let me = new.node(nodeId) else { return }
        let node = "\(nodeId)"
        if me.tls.peerTLS != running.peerTLS || me.tls.clientTLS != running.clientTLS
            || me.tls.clientPlain != running.clientPlain {
            logger.log(.warn, "config_needs_restart", [("node", node), ("keys", "tls_ca,tls_cert,tls_key,client_tls,client_plain")])
        }
        guard running.any else { return }
        // The files the running node uses, from their (possibly new) paths.
        var files = me.tls
        files.clientTLS = running.clientTLS
        if files.cert == nil || files.key == nil || (running.peerTLS && !files.peerTLS) {
            logger.log(.warn, "tls_reload_failed", [("node", node), ("error", "tls_ca, tls_cert or tls_key removed"),
                                                    ("kept", "old certificates")])
            return
        }
        switch load(files, configFile: configFile) {
        case .failure(let e):
            logger.log(.warn, "tls_reload_failed", [("node", node), ("error", "\(e)"), ("kept", "old certificates")])
        case .success(let ctx):
            if running.clientTLS != nil, let c = ctx.client { server.reloadClientTLS(c) }
            if running.peerTLS, let p = ctx.peer { transport?.reloadTLS(p) }
            logger.log(.info, "tls_reloaded", [("node", node), ("cert", files.cert?.path ?? "-")])
        }
    }
}
