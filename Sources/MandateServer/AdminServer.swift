import Glibc
import CMandateShim
import MandateCore
import MandateCrypto
import MandateHTTP
import Synchronization

/// The admin listener (`admin_listen`), apart from agent traffic: `/.well-known/jwks.json` (the
/// Txn-Token keys), `/healthz` and `/readyz` for anyone who can reach it; `/metrics` only with
/// `Authorization: Bearer <admin token>`, and so does the JSON API under `/v1/` (the agent
/// registry, docs/registry.md). Low traffic: blocking sockets, a thread per
/// connection, at most 32 at once, each request complete within 10 s of its first byte.
public final class AdminServer: @unchecked Sendable {  // the listen fd is fixed after init
    public let port: Int
    private let fd: Int32
    private let jwks: @Sendable () -> [UInt8]?
    private let metrics: @Sendable () -> String
    private let token: [UInt8]?
    private let active = Atomic<Int>(0)
    /// The `/v1/` API: method, path, JSON body, request id → status, JSON body, Allow.
    public typealias API = @Sendable (_ method: String, _ path: String, _ body: [UInt8], _ requestID: String)
        -> (status: Int, body: [UInt8], allow: String?)
    private let api: API?
    private let requests = Atomic<Int>(0)
    /// Seconds from a request's first byte to its end.
    static let requestTimeout = 10.0

    /// `jwks`: the current key set (read per request, so a reload rotates it), nil when there is
    /// none. `token`: what `/metrics` needs (nil: it is not served).
    public init(host: String, port: Int, token: String?, jwks: @escaping @Sendable () -> [UInt8]?,
                metrics: @escaping @Sendable () -> String, api: API? = nil) throws {
        self.api = api
        if port != 0 && mandate_port_in_use(host, Int32(port)) == 1 {
            throw ServerError("admin_listen \(host):\(port): address already in use")
        }
        fd = mandate_listen_socket(host, Int32(port), 0, 64)
        guard fd >= 0 else { throw ServerError("admin_listen \(host):\(port): cannot bind (errno \(errno))") }
        _ = mandate_set_blocking(fd)
        self.port = Int(mandate_local_port(fd))
        self.jwks = jwks
        self.metrics = metrics
        self.token = token.map { Array($0.utf8) }
    }

    public func run() {
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 {
                if errno == EINTR { continue }
                break
            }
            guard active.add(1, ordering: .relaxed).newValue <= 32 else {
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
        // A JSON body for the API, at most 64 KB; the request is answered at its end.
        var parser = HTTPRequestParser(limits: HTTPParserLimits(maxURILength: 2048, maxHeaderBytes: 16 << 10, maxHeaderCount: 50,
                                                               maxBodySize: 64 << 10))
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        var head: HTTPRequestHead?
        var body: [UInt8] = []
        // A request must be complete within 10 s of its first byte: the receive timeout alone
        // lets a byte every 9 s hold one of the 32 places for ever (slowloris).
        var deadline: Double?
        while true {
            let left = deadline.map { $0 - monotonicNow() } ?? Self.requestTimeout
            if left <= 0 { return }
            let us = max(1000, Int(left * 1e6))  // 0 would mean no timeout
            var tv = timeval(tv_sec: us / 1_000_000, tv_usec: us % 1_000_000)
            _ = setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            let n = buffer.withUnsafeMutableBytes { read(c, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            if deadline == nil { deadline = monotonicNow() + Self.requestTimeout }
            var keep = true
            buffer.withUnsafeBytes { raw in
                var offset = 0
                while keep {
                    let (event, used) = parser.parse(UnsafeRawBufferPointer(rebasing: raw[offset ..< n]))
                    defer { offset += used }
                    switch event {
                    case nil: return
                    case .head(let h)?: head = h; body = []
                    case .body(let o, let count)?: body += raw[(offset + o) ..< (offset + o + count)]
                    case .end?:
                        if let h = head { keep = answer(c, h, body) && h.keepAlive }
                        head = nil; body = []; deadline = nil
                    case .error(let e)?:
                        write(c, e.status, ["Connection": "close"], Denial(.invalidRequest, e.reason).jsonBody(requestID: "admin"))
                        keep = false
                    }
                }
            }
            if !keep { return }
        }
    }

    private func answer(_ c: Int32, _ h: HTTPRequestHead, _ body: [UInt8]) -> Bool {
        let json = ["Content-Type": "application/json"]
        if h.path.hasPrefix("/v1/") { return answerAPI(c, h, body) }
        guard h.method == "GET" || h.method == "HEAD" else {
            write(c, 405, json.merging(["Allow": "GET, HEAD"]) { a, _ in a },
                  Denial(.invalidRequest, "the admin listener answers GET", status: 405).jsonBody(requestID: "admin"), head: false)
            return true
        }
        let isHEAD = h.method == "HEAD"
        switch h.path {
        case "/healthz", "/readyz":
            write(c, 200, json, Array("{\"status\":\"ok\"}\n".utf8), head: isHEAD)
        case "/metrics":
            guard let token else {
                write(c, 404, json, Denial(.invalidRequest, "set admin_token_file to serve /metrics", status: 404).jsonBody(requestID: "admin"),
                      head: isHEAD)
                return true
            }
            guard authorized(h, token) else {
                write(c, 401, json.merging(["WWW-Authenticate": "Bearer realm=\"mandate-admin\""]) { a, _ in a },
                      Denial(.invalidToken, "the admin token is required").jsonBody(requestID: "admin"), head: isHEAD)
                return true
            }
            write(c, 200, ["Content-Type": "text/plain; version=0.0.4"], Array(metrics().utf8), head: isHEAD)
        case "/.well-known/jwks.json":
            if let keys = jwks() {
                write(c, 200, ["Content-Type": "application/jwk-set+json", "Cache-Control": "max-age=60"], keys, head: isHEAD)
            } else {
                write(c, 404, json, Denial(.invalidRequest, "no txn_token keys are configured", status: 404).jsonBody(requestID: "admin"),
                      head: isHEAD)
            }
        default:
            write(c, 404, json, Denial(.invalidRequest, "not found", status: 404).jsonBody(requestID: "admin"), head: isHEAD)
        }
        return true
    }

    /// RFC 6750 §2.1, compared in constant time.
    private func authorized(_ h: HTTPRequestHead, _ token: [UInt8]) -> Bool {
        let given = h.value("Authorization").flatMap { v -> [UInt8]? in
            let b = Array(v.utf8)
            guard b.count > 7, b[0 ..< 7].elementsEqual("bearer ".utf8, by: { ($0 | 0x20) == $1 }) else { return nil }
            return Array(b[7...])
        }
        guard let given else { return false }
        return constantTimeEqual(given, token)
    }

    /// `/v1/`: the admin token first, then the API.
    private func answerAPI(_ c: Int32, _ h: HTTPRequestHead, _ body: [UInt8]) -> Bool {
        let id = "admin-" + String(requests.add(1, ordering: .relaxed).newValue)
        let json = ["Content-Type": "application/json", "Mandate-Request-Id": id]
        guard let token else {
            write(c, 404, json, Denial(.invalidRequest, "set admin_token_file to serve the admin API", status: 404).jsonBody(requestID: id))
            return true
        }
        guard authorized(h, token) else {
            write(c, 401, json.merging(["WWW-Authenticate": "Bearer realm=\"mandate-admin\""]) { a, _ in a },
                  Denial(.invalidToken, "the admin token is required (Authorization: Bearer <admin token>)").jsonBody(requestID: id))
            return true
        }
        guard let api else {
            write(c, 404, json, Denial(.invalidRequest, "set state_dir to serve the registry API", status: 404).jsonBody(requestID: id))
            return true
        }
        let a = api(h.method, String(h.path), body, id)
        write(c, a.status, a.allow.map { json.merging(["Allow": $0]) { x, _ in x } } ?? json, a.body)
        return true
    }

    private func write(_ c: Int32, _ status: Int, _ fields: [String: String], _ body: [UInt8], head: Bool = false) {
        var out: [UInt8] = []
        HTTPResponseWriter.appendStatusLine(status, to: &out)
        for (k, v) in fields.sorted(by: { $0.key < $1.key }) { HTTPResponseWriter.appendField(k, v, to: &out) }
        HTTPResponseWriter.appendField("Content-Length", body.count, to: &out)
        out += [0x0D, 0x0A]
        if !head { out += body }
        var off = 0
        while off < out.count {
            let n = out.withUnsafeBytes { send(c, $0.baseAddress! + off, $0.count - off, Int32(MANDATE_MSG_NOSIGNAL)) }
            if n <= 0 { return }
            off += n
        }
    }
}
