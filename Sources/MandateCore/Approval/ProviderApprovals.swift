import MandateCrypto
import Synchronization

/// Approvals asked of an external CIBA provider (`ciba_provider`): the proxy is its client in
/// poll mode (OpenID CIBA Core 1.0 §7, §10.1, §11). The provider authenticates the person and
/// shows them the binding message; the proxy keeps the binding to the exact request itself, so
/// an approval id answers only for the request it was opened for, once.
public final class ProviderApprovals: ApprovalGate {
    public typealias Schedule = @Sendable (Double, @escaping @Sendable () -> Void) -> Void

    enum Phase {
        /// The backchannel request is on its way.
        case asking
        case polling(authReqID: String)
        case approved(ApprovalReceipt)
        case denied(approver: String)
        case expired
        case failed(Denial)
        case spent
    }

    struct Entry {
        var request: ApprovalRequest
        var phase: Phase
        var interval: Double
        var expiresAt: Int64
        let ready = Readiness()
    }

    let settings: ProxyConfig.CIBAProvider
    let secret: String
    let poster: any FormPoster
    let schedule: Schedule
    let clock: @Sendable () -> Int64
    /// Asked for when the provider does not say (CIBA §7.3: interval defaults to 5 s).
    let expiresIn: Int64
    private let entries = Mutex<[String: Entry]>([:])
    public static let maxEntries = 10_000
    static let grantType = "urn:openid:params:grant-type:ciba"

    /// `clock`: Unix seconds. `schedule(seconds, f)`: runs f later, on any thread.
    public init(settings: ProxyConfig.CIBAProvider, secret: String, expiresIn: Double, poster: any FormPoster,
                schedule: @escaping Schedule, clock: @escaping @Sendable () -> Int64) {
        self.settings = settings; self.secret = secret; self.poster = poster; self.schedule = schedule
        self.clock = clock; self.expiresIn = Int64(expiresIn)
    }

    public func submit(_ request: ApprovalRequest, id: String?, now: Int64) -> ApprovalState {
        guard let id else { return open(request, now: now) }
        return entries.withLock { m -> ApprovalState in
            guard var e = m[id], e.request.sameAction(request) else {
                return .refused(Denial(.accessDenied, "Approval-Id names no approval for this request"))
            }
            if now >= e.expiresAt, case .polling = e.phase { e.phase = .expired }
            switch e.phase {
            case .asking, .polling: return .pending(id: id, ready: e.ready)
            case .approved(let receipt):
                e.phase = .spent
                m[id] = e
                return .approved(receipt)
            case .denied(let who): return .denied(id: id, approver: who)
            case .expired: return .expired(id: id)
            case .failed(let d): return .refused(d)
            case .spent: return .refused(Denial(.accessDenied, "this approval has already been used"))
            }
        }
    }

    public func pending(now: Int64) -> Int {
        entries.withLock { m in
            m.values.count { e in
                switch e.phase {
                case .asking, .polling: e.expiresAt > now
                default: false
                }
            }
        }
    }

    func open(_ request: ApprovalRequest, now: Int64) -> ApprovalState {
        let id = BackchannelRequests.newID()  // the same approval ids as the built-in service's
        let entry = Entry(request: request, phase: .asking, interval: 5, expiresAt: now + expiresIn)
        let admitted = entries.withLock { m -> Bool in
            if m.count >= Self.maxEntries { m = m.filter { $0.value.expiresAt > now } }
            guard m.count < Self.maxEntries else { return false }
            m[id] = entry
            return true
        }
        guard admitted else {
            var d = Denial(.temporarilyUnavailable, "too many approvals are pending; retry shortly")
            d.retryAfter = 5
            return .refused(d)
        }
        // CIBA §7.1: openid scope; the person by login_hint; what they approve in binding_message.
        let form = "scope=openid&login_hint=" + Introspector.formEncode(request.principal)
            + "&binding_message=" + Introspector.formEncode(BindingMessage.summarising(request))
            + "&requested_expiry=\(expiresIn)"
        post(settings.backchannelEndpoint, form) { [self] result in backchannelAnswered(id, result) }
        return .pending(id: id, ready: entry.ready)
    }

    private func post(_ url: String, _ form: String, _ done: @escaping @Sendable (Result<(status: Int, body: [UInt8]), Reason>) -> Void) {
        // RFC 6749 §2.3.1: client_secret_basic, each part form-encoded first.
        poster.post(url, form: form, user: Introspector.formEncode(settings.clientID),
                    password: Introspector.formEncode(secret), done: done)
    }

    /// §7.3: auth_req_id, expires_in, and interval (5 s when absent).
    func backchannelAnswered(_ id: String, _ result: Result<(status: Int, body: [UInt8]), Reason>) {
        guard case .success(let r) = result else { return finish(id, .failed(unreachable())) }
        guard case .success(let o) = StrictJSON.parseObject(r.body[...]) else { return finish(id, .failed(unreachable())) }
        guard r.status == 200, let authReqID = o["auth_req_id"]?.string, !authReqID.isEmpty,
              let expires = o["expires_in"]?.integer, expires > 0 else {
            // §13: errors about the person (unknown_user_id, access_denied …) refuse the request;
            // the others are about the proxy's own registration or request: a bad gateway.
            let code = o["error"]?.string ?? "status \(r.status)"
            if r.status >= 500 || code == "temporarily_unavailable" { return finish(id, .failed(unreachable())) }
            let aboutTheProxy = ["invalid_client", "unauthorized_client", "invalid_request", "invalid_scope"].contains(code)
            return finish(id, .failed(aboutTheProxy
                ? Denial(.badGateway, "the approval provider refused the proxy's request (\(code))")
                : Denial(.accessDenied, "the approval provider refused to ask the principal (\(code))")))
        }
        let interval = Double(max(1, min(o["interval"]?.integer ?? 5, 600)))
        let now = clock()
        entries.withLock { m in
            guard var e = m[id] else { return }
            e.phase = .polling(authReqID: authReqID)
            e.interval = interval
            e.expiresAt = min(e.expiresAt, now + min(expires, 86400))  // bounded before the sum: the provider's number
            m[id] = e
        }
        schedule(interval) { [self] in poll(id) }
    }

    /// §10.1 token request; §11 errors.
    func poll(_ id: String) {
        guard let (authReqID, expiresAt) = entries.withLock({ m -> (String, Int64)? in
            guard let e = m[id], case .polling(let a) = e.phase else { return nil }
            return (a, e.expiresAt)
        }) else { return }
        if clock() >= expiresAt { return finish(id, .expired) }
        post(settings.tokenEndpoint, "grant_type=\(Self.grantType)&auth_req_id=" + Introspector.formEncode(authReqID)) { [self] result in
            tokenAnswered(id, authReqID, result)
        }
    }

    func tokenAnswered(_ id: String, _ authReqID: String, _ result: Result<(status: Int, body: [UInt8]), Reason>) {
        guard case .success(let r) = result, case .success(let o) = StrictJSON.parseObject(r.body[...]) else {
            return finish(id, .failed(unreachable()))
        }
        if r.status == 200 {
            guard let idToken = o["id_token"]?.string, let sub = idTokenSubject(idToken, authReqID: authReqID) else {
                return finish(id, .failed(Denial(.accessDenied, "the approval provider's ID token is not for this request")))
            }
            let receipt = ApprovalReceipt(id: id, approver: sub, token: idToken,
                                          hash: Base64URL.encode(SHA256.hash(Array(idToken.utf8))))
            return finish(id, .approved(receipt))
        }
        switch o["error"]?.string {
        case "authorization_pending":
            let interval = entries.withLock { $0[id]?.interval } ?? 5
            schedule(interval) { [self] in poll(id) }
        case "slow_down":
            // §11: the interval grows by at least 5 s for this and later requests.
            let interval = entries.withLock { m -> Double in
                m[id]?.interval += 5
                return m[id]?.interval ?? 10
            }
            schedule(interval) { [self] in poll(id) }
        case "access_denied": finish(id, .denied(approver: entries.withLock { $0[id]?.request.principal } ?? ""))
        case "expired_token": finish(id, .expired)
        default: finish(id, .failed(Denial(.accessDenied, "the approval provider answered \(o["error"]?.string ?? "status \(r.status)")")))
        }
    }

    /// OpenID Connect Core §3.1.3.7: received straight from the token endpoint over verified
    /// TLS, the ID token's issuer is the one we asked, so its claims are checked, not its
    /// signature: iss, aud, exp, and the auth_req_id it answers (CIBA §10.1.1). Its sub is the approver.
    func idTokenSubject(_ token: String, authReqID: String) -> String? {
        let parts = token.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 3, let payload = Base64URL.decode(parts[1]),
              case .success(let c) = StrictJSON.parseObject(payload[...]),
              c["iss"]?.string == settings.issuer, let sub = c["sub"]?.string, !sub.isEmpty,
              let exp = c["exp"]?.integer, exp > clock() else { return nil }
        let audience = c["aud"]?.string.map { [$0] } ?? c["aud"]?.array?.compactMap(\.string) ?? []
        guard audience.contains(settings.clientID) else { return nil }
        if let claimed = c["urn:openid:params:jwt:claim:auth_req_id"]?.string, claimed != authReqID { return nil }
        return sub
    }

    private func unreachable() -> Denial {
        var d = Denial(.temporarilyUnavailable, "the approval provider could not be reached; retry shortly")
        d.retryAfter = 5
        return d
    }

    private func finish(_ id: String, _ phase: Phase) {
        let ready = entries.withLock { m -> Readiness? in
            guard var e = m[id] else { return nil }
            e.phase = phase
            m[id] = e
            return e.ready
        }
        ready?.fire()
    }
}
