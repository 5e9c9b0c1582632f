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
public final class AdminServer: Sendable {
    public var port: Int { listener.port }
    private let listener: SmallListener
    private let jwks: @Sendable () -> [UInt8]?
    private let metrics: @Sendable () -> String
    private let token: [UInt8]?
    /// The `/v1/` API: method, path, JSON body, request id → status, JSON body, Allow.
    public typealias API = @Sendable (_ method: String, _ path: String, _ body: [UInt8], _ requestID: String)
        -> (status: Int, body: [UInt8], allow: String?)
    private let api: API?
    private let requests = Atomic<Int>(0)

    /// `jwks`: the current key set (read per request, so a reload rotates it), nil when there is
    /// none. `token`: what `/metrics` needs (nil: it is not served).
    public init(host: String, port: Int, token: String?, jwks: @escaping @Sendable () -> [UInt8]?,
                metrics: @escaping @Sendable () -> String, api: API? = nil) throws {
        self.api = api
        self.jwks = jwks
        self.metrics = metrics
        let token = token.map { Array($0.utf8) }
        self.token = token
        let box = Box()
        // A JSON body for the API, at most 64 KB; the request is answered at its end.
        listener = try SmallListener(host: host, port: port, what: "admin_listen", maxConnections: 32, maxBody: 64 << 10,
                                     answer: { h, body in box.server!.answer(h, body) },
                                     refuse: { e in .init(status: e.status, fields: [("Content-Type", "application/json")],
                                                          body: Denial(.invalidRequest, e.reason).jsonBody(requestID: "admin")) })
        box.server = self
    }

    /// Lets the listener's closures reach the server they are made for.
    private final class Box: @unchecked Sendable { weak var server: AdminServer? }

    public func run() { listener.run() }

    /// `run()` on a thread of its own.
    public func start() { listener.start() }

    public func stop() { listener.stop() }

    private func answer(_ h: HTTPRequestHead, _ body: [UInt8]) -> SmallListener.Reply {
        let json = ["Content-Type": "application/json"]
        if h.path.hasPrefix("/v1/") { return answerAPI(h, body) }
        guard h.method == "GET" || h.method == "HEAD" else {
            return reply(405, json.merging(["Allow": "GET, HEAD"]) { a, _ in a },
                         Denial(.invalidRequest, "the admin listener answers GET", status: 405).jsonBody(requestID: "admin"), head: false)
        }
        let isHEAD = h.method == "HEAD"
        switch h.path {
        case "/healthz", "/readyz":
            return reply(200, json, Array("{\"status\":\"ok\"}\n".utf8), head: isHEAD)
        case "/metrics":
            guard let token else {
                return reply(404, json, Denial(.invalidRequest, "set admin_token_file to serve /metrics", status: 404).jsonBody(requestID: "admin"),
                         head: isHEAD)
            }
            guard authorized(h, token) else {
                return reply(401, json.merging(["WWW-Authenticate": "Bearer realm=\"mandate-admin\""]) { a, _ in a },
                         Denial(.invalidToken, "the admin token is required").jsonBody(requestID: "admin"), head: isHEAD)
            }
            return reply(200, ["Content-Type": "text/plain; version=0.0.4"], Array(metrics().utf8), head: isHEAD)
        case "/.well-known/jwks.json":
            if let keys = jwks() {
                return reply(200, ["Content-Type": "application/jwk-set+json", "Cache-Control": "max-age=60"], keys, head: isHEAD)
            } else {
                return reply(404, json, Denial(.invalidRequest, "no txn_token keys are configured", status: 404).jsonBody(requestID: "admin"),
                         head: isHEAD)
            }
        default:
            return reply(404, json, Denial(.invalidRequest, "not found", status: 404).jsonBody(requestID: "admin"), head: isHEAD)
        }
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
    private func answerAPI(_ h: HTTPRequestHead, _ body: [UInt8]) -> SmallListener.Reply {
        let id = "admin-" + String(requests.add(1, ordering: .relaxed).newValue)
        let json = ["Content-Type": "application/json", "Mandate-Request-Id": id]
        guard let token else {
            return reply(404, json, Denial(.invalidRequest, "set admin_token_file to serve the admin API", status: 404).jsonBody(requestID: id))
        }
        guard authorized(h, token) else {
            return reply(401, json.merging(["WWW-Authenticate": "Bearer realm=\"mandate-admin\""]) { a, _ in a },
                         Denial(.invalidToken, "the admin token is required (Authorization: Bearer <admin token>)").jsonBody(requestID: id))
        }
        guard let api else {
            return reply(404, json, Denial(.invalidRequest, "set state_dir to serve the registry API", status: 404).jsonBody(requestID: id))
        }
        let a = api(h.method, String(h.path), body, id)
        return reply(a.status, a.allow.map { json.merging(["Allow": $0]) { x, _ in x } } ?? json, a.body)
    }

    private func reply(_ status: Int, _ fields: [String: String], _ body: [UInt8], head: Bool = false) -> SmallListener.Reply {
        SmallListener.Reply(status: status, fields: fields.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, body: body, omitBody: head)
    }
}
