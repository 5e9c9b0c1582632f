import Dispatch
import Glibc
import CMandateShim
import MandateCore
import MandateCrypto
import MandateHTTP
import Synchronization

/// The approval listener (`approval { listen … }`): the built-in CIBA service's endpoints and
/// its page (`ApprovalEndpoints`). Like the admin listener (`SmallListener`): at most 64
/// connections at once, each request complete within 10 s of its first byte; bodies of at most 16 KB.
public final class ApprovalServer: Sendable {
    public var port: Int { listener.port }
    private let listener: SmallListener

    public init(host: String, port: Int, service: ApprovalService) throws {
        let endpoints = ApprovalEndpoints(service)
        listener = try SmallListener(host: host, port: port, what: "approval listen", maxConnections: 64, maxBody: 16 << 10,
                                     answer: { h, body in
                                         let r = endpoints.respond(method: h.method, path: h.path, query: h.query, headers: h.headers,
                                                                   body: body, now: Int64(unixMillisNow() / 1000))
                                         // RFC 9110 §9.3.2: no content in an answer to HEAD (a body would be read
                                         // as the start of the next response on the connection).
                                         return SmallListener.Reply(status: r.status, fields: Self.sniffless(r.fields), body: r.body,
                                                                    omitBody: h.method == "HEAD")
                                     },
                                     refuse: { e in
                                         SmallListener.Reply(status: e.status, fields: Self.sniffless([("Content-Type", "application/json")]),
                                                             body: CIBAError(.invalidRequest, e.reason).jsonBody)
                                     })
    }

    /// Every answer, JSON and errors too, is read only as its Content-Type says: their bodies
    /// echo what a request sent (a path, an id).
    static func sniffless(_ fields: [(String, String)]) -> [(String, String)] {
        fields.contains { $0.0 == "X-Content-Type-Options" } ? fields : fields + [("X-Content-Type-Options", "nosniff")]
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

    public func run() { listener.run() }

    /// `run()` on a thread of its own.
    public func start() { listener.start() }

    public func stop() { listener.stop() }
}
