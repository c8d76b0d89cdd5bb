// HTTPServer: a tiny GET-only HTTP endpoint on libevent's evhttp, on the same
// loop as everything else (for /metrics and /health). Handlers return the
// whole response; there is no streaming and no request body.
import CLibevent

public final class HTTPServer {
    public struct Response {
        public var status: Int32
        public var contentType: String
        public var body: String
        public init(status: Int32 = 200, contentType: String = "text/plain; charset=utf-8", body: String) {
            self.status = status
            self.contentType = contentType
            self.body = body
        }
    }

    private var http: OpaquePointer?
    private let handler: (String) -> Response
    public private(set) var boundPort: UInt16 = 0

    public init(loop: EventLoop, host: String, port: UInt16, handler: @escaping (String) -> Response) throws(ReactorError) {
        self.handler = handler
        guard let h = evhttp_new(loop.base) else { throw ReactorError("evhttp_new failed") }
        http = h
        evhttp_set_allowed_methods(h, UInt16(EVHTTP_REQ_GET.rawValue | EVHTTP_REQ_HEAD.rawValue))
        guard let handle = evhttp_bind_socket_with_handle(h, host, port) else {
            evhttp_free(h)
            http = nil
            throw ReactorError.errno("cannot listen on \(host):\(port) for HTTP")
        }
        boundPort = Listener.localPort(of: evhttp_bound_socket_get_fd(handle))
        evhttp_set_gencb(h, { req, ctx in
            let me = Unmanaged<HTTPServer>.fromOpaque(ctx!).takeUnretainedValue()
            withExtendedLifetime(me) { me.serve(req!) }
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit { close() }

    public func close() {
        if let http { evhttp_free(http) }
        http = nil
    }

    private func serve(_ req: OpaquePointer) {
        let uri = evhttp_request_get_uri(req).map { String(cString: $0) } ?? "/"
        let path = String(uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "/")
        let r = handler(path)
        let headers = evhttp_request_get_output_headers(req)
        evhttp_add_header(headers, "Content-Type", r.contentType)
        let buf = evbuffer_new()
        var body = r.body
        body.withUTF8 { raw in _ = evbuffer_add(buf, raw.baseAddress, raw.count) }
        evhttp_send_reply(req, r.status, r.status == 200 ? "OK" : "Error", buf)
        evbuffer_free(buf)
    }
}
