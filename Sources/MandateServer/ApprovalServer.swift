import Dispatch
import Glibc
import CMandateShim
import MandateCore
import MandateCrypto
import MandateHTTP
import Synchronization

/// The approval listener (`approval { listen … }`): the built-in CIBA service's endpoints
/// (`ApprovalEndpoints`). Like the admin listener: blocking sockets, a thread per connection, at
/// most 64 at once, each bounded by a 10 s receive timeout; bodies of at most 16 KB.
public final class ApprovalServer: @unchecked Sendable {  // the listen fd is fixed after init
    public let port: Int
    private let fd: Int32
    private let endpoints: ApprovalEndpoints
    private let active = Atomic<Int>(0)
    static let maxBody = 16 << 10

    public init(host: String, port: Int, service: ApprovalService) throws {
        if port != 0 && mandate_port_in_use(host, Int32(port)) == 1 {
            throw ServerError("approval listen \(host):\(port): address already in use")
        }
        fd = mandate_listen_socket(host, Int32(port), 0, 64)
        guard fd >= 0 else { throw ServerError("approval listen \(host):\(port): cannot bind (errno \(errno))") }
        _ = mandate_set_blocking(fd)
        self.port = Int(mandate_local_port(fd))
        endpoints = ApprovalEndpoints(service)
    }

    /// One JSON POST off the request path (CIBA pings, webhooks): one attempt, 5 s at most; a
    /// failure is logged and not retried. `what` names it in the log.
    public static func poster(log: @escaping @Sendable (String) -> Void)
        -> @Sendable (_ what: String, _ url: String, _ headers: [HTTPHeader], _ body: [UInt8]) -> Void {
        let queue = DispatchQueue(label: "mandate.approval-notices", attributes: .concurrent)
        return { what, url, headers, body in
            queue.async {
                do {
                    let r = try HTTPClient.perform(method: "POST", url: url, headers: headers + [HTTPHeader("Content-Type", "application/json")],
                                                   body: body, timeout: 5)
                    if !(200...299).contains(r.status) { log("\(what) to \(url) answered \(r.status)") }
                } catch {
                    log("\(what) to \(url) failed: \((error as? HTTPClient.Failure)?.message ?? "\(error)")")
                }
            }
        }
    }

    /// CIBA §10.2 ping callbacks (the client may still poll when one fails).
    public static func pinger(log: @escaping @Sendable (String) -> Void) -> @Sendable (PingNotification) -> Void {
        let post = poster(log: log)
        return { n in post("CIBA ping", n.endpoint, [HTTPHeader("Authorization", "Bearer \(n.bearer)")], n.body) }
    }

    /// Tells a principal that an approval waits (`principal DID { webhook URL; }`).
    public static func webhooks(log: @escaping @Sendable (String) -> Void) -> @Sendable (ApprovalWebhook) -> Void {
        let post = poster(log: log)
        return { w in post("approval webhook", w.endpoint, [], w.body) }
    }

    public func run() {
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 {
                if errno == EINTR { continue }
                break
            }
            guard active.add(1, ordering: .relaxed).newValue <= 64 else {
                active.subtract(1, ordering: .relaxed)
                close(c)
                continue
            }
            var tv = timeval(tv_sec: 10, tv_usec: 0)
            _ = setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            pthread_detach(startThread { [self] in
                serve(c)
                active.subtract(1, ordering: .relaxed)
            })
        }
        close(fd)
    }

    /// `run()` on a thread of its own.
    public func start() { pthread_detach(startThread { [self] in run() }) }

    public func stop() { shutdown(fd, Int32(MANDATE_SHUT_RDWR)) }

    private func serve(_ c: Int32) {
        defer { close(c) }
        var parser = HTTPRequestParser(limits: HTTPParserLimits(maxURILength: 2048, maxHeaderBytes: 16 << 10, maxHeaderCount: 50,
                                                               maxBodySize: Self.maxBody))
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        var head: HTTPRequestHead?
        var body: [UInt8] = []
        while true {
            let n = buffer.withUnsafeMutableBytes { read(c, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            var keep = true
            buffer.withUnsafeBytes { raw in
                var offset = 0
                while keep {
                    let input = UnsafeRawBufferPointer(rebasing: raw[offset ..< n])
                    let (event, used) = parser.parse(input)
                    switch event {
                    case nil: offset += used; return
                    case .head(let h)?: head = h; body = []
                    case .body(let o, let k)?: body += input[o ..< o + k]
                    case .end?:
                        if let h = head {
                            let r = endpoints.respond(method: h.method, path: h.path, query: h.query, headers: h.headers, body: body,
                                                      now: Int64(unixMillisNow() / 1000))
                            write(c, r, keepAlive: h.keepAlive)
                            keep = h.keepAlive
                        }
                        head = nil; body = []
                    case .error(let e)?:
                        let err = CIBAError(.invalidRequest, e.reason)
                        write(c, ApprovalResponse(status: e.status, fields: [("Content-Type", "application/json")], body: err.jsonBody),
                              keepAlive: false)
                        keep = false
                    }
                    offset += used
                }
            }
            if !keep { return }
        }
    }

    private func write(_ c: Int32, _ r: ApprovalResponse, keepAlive: Bool) {
        var out: [UInt8] = []
        HTTPResponseWriter.appendStatusLine(r.status, to: &out)
        for (k, v) in r.fields { HTTPResponseWriter.appendField(k, v, to: &out) }
        if !keepAlive { HTTPResponseWriter.appendField("Connection", "close", to: &out) }
        HTTPResponseWriter.appendField("Content-Length", r.body.count, to: &out)
        out += [0x0D, 0x0A]
        out += r.body
        var off = 0
        while off < out.count {
            let n = out.withUnsafeBytes { send(c, $0.baseAddress! + off, $0.count - off, Int32(MANDATE_MSG_NOSIGNAL)) }
            if n <= 0 { return }
            off += n
        }
    }
}
