import Dispatch
import MandateCrypto
import Synchronization

/// Who can be asked, and with which key their decisions are checked. The configured principals
/// (`ConfiguredPrincipals`); the registry's may be added behind the same interface.
public protocol ApprovalPrincipals: Sendable {
    /// CIBA §7.1 login_hint: a principal's DID, or its configured name; nil when unknown.
    func principal(hint: String) -> String?
    /// The key that signs this principal's decisions (its DID's), and its verification method id.
    func key(for did: String) -> (key: VerificationKey, methodID: String)?
    /// Where this principal is told that an approval waits (`principal DID { webhook URL; }`).
    func webhook(for did: String) -> String?
    /// The name the principal is configured or registered with (shown on the page beside the DID).
    func name(for did: String) -> String?
}

extension ApprovalPrincipals {
    public func webhook(for did: String) -> String? { nil }
    public func name(for did: String) -> String? { nil }
}

/// The principals of the running configuration (read per call, so a reload applies); keys from
/// did:key and did:jwk DIDs, or from `lookup` (e.g. a registry) for the others.
public struct ConfiguredPrincipals: ApprovalPrincipals {
    let current: @Sendable () -> [ProxyConfig.Principal]
    let lookup: @Sendable (String) -> (key: VerificationKey, methodID: String)?

    public init(_ current: @escaping @Sendable () -> [ProxyConfig.Principal],
                lookup: @escaping @Sendable (String) -> (key: VerificationKey, methodID: String)? = { _ in nil }) {
        self.current = current; self.lookup = lookup
    }

    public func principal(hint: String) -> String? {
        let all = current()
        if let p = all.first(where: { sameBytes($0.did, hint) }) { return p.did }
        let named = all.filter { sameBytes($0.name, hint) }
        return named.count == 1 ? named[0].did : nil  // a name two principals share identifies neither
    }

    public func key(for did: String) -> (key: VerificationKey, methodID: String)? {
        guard current().contains(where: { sameBytes($0.did, did) }) else { return lookup(did) }
        if case .success(let r) = DID.resolve(did) { return (r.key, r.methodID) }
        return lookup(did)
    }

    public func webhook(for did: String) -> String? { current().first(where: { sameBytes($0.did, did) })?.webhook }
    public func name(for did: String) -> String? { current().first(where: { sameBytes($0.did, did) })?.name }
}

/// A configured CIBA client (client_secret_basic, RFC 6749 §2.3.1).
public struct CIBAClientCredentials: Sendable {
    public var id: String
    public var secret: [UInt8]
    public var delivery: ProxyConfig.CIBAClient.Delivery
    public var notificationEndpoint: String?
    public init(id: String, secret: [UInt8], delivery: ProxyConfig.CIBAClient.Delivery = .poll, notificationEndpoint: String? = nil) {
        self.id = id; self.secret = secret; self.delivery = delivery; self.notificationEndpoint = notificationEndpoint
    }
}

/// CIBA §10.2: tell a ping client that its request was decided.
public struct PingNotification: Sendable, Equatable {
    public var endpoint: String
    public var bearer: String
    public var authReqID: String
    public init(endpoint: String, bearer: String, authReqID: String) { self.endpoint = endpoint; self.bearer = bearer; self.authReqID = authReqID }
    /// `{"auth_req_id": …}`.
    public var body: [UInt8] {
        var s = "{\"auth_req_id\":"
        JSONText.appendString(authReqID, to: &s)
        return Array((s + "}").utf8)
    }
}

/// The built-in approval service (OpenID CIBA Core 1.0): the OP for configured CIBA clients, and
/// the proxy's own `ApprovalGate`, over one `BackchannelRequests`. Decisions are receipts signed
/// by the principal (`SignedDecision`).
public final class ApprovalService: ApprovalGate, @unchecked Sendable {  // mutable state is in the Mutex
    public struct Settings: Sendable {
        public var requests: BackchannelRequests.Settings
        /// public_url: the ID tokens' iss, and the base of the discovery document's endpoints.
        public var issuer: String
        /// Lifetime of issued ID tokens and access tokens.
        public var tokenTTL: Int64 = 300
        public init(requests: BackchannelRequests.Settings, issuer: String) {
            self.requests = requests
            var i = issuer
            while i.hasSuffix("/") { i.removeLast() }
            self.issuer = i
        }

        public init(_ a: ProxyConfig.Approval) {
            self.init(requests: BackchannelRequests.Settings(expiresIn: Int64(a.expiresIn.rounded(.up)),
                                                             interval: Int64(a.interval.rounded(.up))),
                      issuer: a.publicURL)
        }
    }

    struct State {
        var requests: BackchannelRequests
        var ready: [String: Readiness] = [:]
        var sessions = ApprovalSessions()
    }

    public let settings: Settings
    public let key: SigningKey
    let clients: [String: CIBAClientCredentials]
    public let principals: any ApprovalPrincipals
    let notify: @Sendable (PingNotification) -> Void
    let webhook: @Sendable (ApprovalWebhook) -> Void
    /// Spent sign-in tokens (their jti, per principal) until they expire; full, it refuses.
    let logins = MemoryReplayCache(capacity: 10_000)
    let schedule: @Sendable (Int64, @escaping @Sendable () -> Void) -> Void
    let clock: @Sendable () -> Int64
    let state: Mutex<State>

    /// `key`: approval.key, signs ID tokens. `notify` sends ping callbacks (off the caller's
    /// thread); `webhook` tells principals that an approval waits (off the caller's thread too).
    /// `schedule(seconds, f)` runs `f` later (expiry wakes waiters); `clock` is Unix seconds.
    public init(settings: Settings, key: SigningKey, clients: [CIBAClientCredentials], principals: any ApprovalPrincipals,
                notify: @escaping @Sendable (PingNotification) -> Void = { _ in },
                webhook: @escaping @Sendable (ApprovalWebhook) -> Void = { _ in },
                schedule: (@Sendable (Int64, @escaping @Sendable () -> Void) -> Void)? = nil,
                clock: @escaping @Sendable () -> Int64) {
        self.settings = settings; self.key = key; self.principals = principals; self.notify = notify; self.clock = clock
        self.webhook = webhook
        self.clients = Dictionary(clients.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        self.schedule = schedule ?? { seconds, f in DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(Int(seconds))) { f() } }
        state = Mutex(State(requests: BackchannelRequests(settings: settings.requests)))
    }

    // MARK: ApprovalGate (the proxy's own requests)

    public func pending(now: Int64) -> Int {
        state.withLock { s in s.requests.entries.values.count { $0.decision == .pending && !$0.isExpired(at: now) } }
    }

    public func submit(_ request: ApprovalRequest, id: String?, now: Int64) -> ApprovalState {
        guard let id else { return open(request, now: now) }
        return state.withLock { s -> ApprovalState in
            guard let e = s.requests.entry(id), e.client == .proxy, let asked = e.approval else {
                return .refused(Denial(.accessDenied, "approval \(id) is unknown or already used"))
            }
            guard asked.sameAction(request), sameBytes(asked.principal, request.principal) else {
                return .refused(Denial(.accessDenied, "approval \(id) was given for another request"))
            }
            if e.isExpired(at: now) { return .expired(id: id) }
            switch e.decision {
            case .denied: return .denied(id: id, approver: e.receipt?.approver ?? e.principal)
            case .approved:
                guard case .issue(let spent) = s.requests.poll(id, client: .proxy, now: now, pacing: false),
                      let receipt = spent.receipt else { return .refused(Denial(.accessDenied, "approval \(id) is spent")) }
                s.ready[id] = nil
                return .approved(receipt)
            case .pending:
                if let r = s.ready[id] { return .pending(id: id, ready: r) }
                let r = Readiness()
                s.ready[id] = r
                return .pending(id: id, ready: r)
            }
        }
    }

    private func open(_ request: ApprovalRequest, now: Int64) -> ApprovalState {
        guard principals.key(for: request.principal) != nil else {
            return .refused(Denial(.accessDenied, "principal \(request.principal) has no key to approve with"))
        }
        let ready = Readiness()
        let opened = state.withLock { s -> Result<BackchannelRequests.Entry, CIBAError> in
            let r = s.requests.open(client: .proxy, principal: request.principal, bindingMessage: BindingMessage.summarising(request),
                                    approval: request, now: now)
            if case .success(let e) = r { s.ready[e.id] = ready }
            return r
        }
        switch opened {
        case .failure(let e): return .refused(Denial(.temporarilyUnavailable, e.description))
        case .success(let e):
            armExpiry(e, now: now)
            announce(e)
            return .pending(id: e.id, ready: ready)
        }
    }

    /// The approval page's URL: where a webhook sends the person.
    public var pageURL: String { settings.issuer + "/" }

    /// Tells the principal, when they have a webhook, that `e` waits for them.
    private func announce(_ e: BackchannelRequests.Entry) {
        guard let url = principals.webhook(for: e.principal) else { return }
        webhook(ApprovalWebhook(webhook: url, entry: e, page: pageURL))
    }

    private func armExpiry(_ e: BackchannelRequests.Entry, now: Int64) {
        schedule(max(0, e.expiresAt - now)) { [self] in expire(now: clock()) }
    }

    /// Wakes those waiting on requests that expired by `now`.
    public func expire(now: Int64) {
        let due = state.withLock { s -> [Readiness] in
            s.requests.expired(at: now).compactMap { s.ready.removeValue(forKey: $0) }
        }
        for r in due { r.fire() }
    }

    // MARK: CIBA endpoints' logic (ApprovalEndpoints renders them)

    /// §7: an authenticated client's request; the parameters already parsed (§7.1).
    public func authorize(client: CIBAClientCredentials, _ p: [String: String], now: Int64) -> Result<BackchannelRequests.Entry, CIBAError> {
        guard let scope = p["scope"], scope.split(separator: " ").contains("openid") else {
            return .failure(CIBAError(.invalidScope, "scope must include openid"))
        }
        if p["request"] != nil { return .failure(CIBAError(.invalidRequest, "signed authentication requests are not supported")) }
        let hints = ["login_hint", "login_hint_token", "id_token_hint"].filter { p[$0] != nil }
        guard hints.count == 1 else { return .failure(CIBAError(.invalidRequest, "exactly one of login_hint, login_hint_token and id_token_hint is required")) }
        guard let hint = p["login_hint"] else { return .failure(CIBAError(.invalidRequest, "only login_hint is supported")) }
        guard let principal = principals.principal(hint: hint) else {
            return .failure(CIBAError(.unknownUserID, "login_hint names no principal here"))
        }
        let message = p["binding_message"] ?? ""
        guard BindingMessage.isAcceptable(message) else {
            return .failure(CIBAError(.invalidBindingMessage, "binding_message must be printable text of at most \(BindingMessage.maxLength) characters"))
        }
        var expiry: Int64?
        if let r = p["requested_expiry"] {
            guard let v = Int64(r), v > 0, r.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                return .failure(CIBAError(.invalidRequest, "requested_expiry must be a positive integer"))
            }
            expiry = v
        }
        var token: String?
        if client.delivery == .ping {
            guard let t = p["client_notification_token"], !t.isEmpty, t.utf8.count <= 1024,
                  t.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
                return .failure(CIBAError(.invalidRequest, "client_notification_token is required in ping mode (visible ASCII, at most 1024 bytes)"))
            }
            token = t
        }
        let r = state.withLock { s in
            s.requests.open(client: .ciba(client.id), principal: principal, bindingMessage: message, notificationToken: token,
                            requestedExpiry: expiry, now: now)
        }
        if case .success(let e) = r { announce(e) }
        return r
    }

    /// §10.1: a token request for `id` by an authenticated client; §10.1.1 on success.
    public func token(client: CIBAClientCredentials, id: String, now: Int64) -> Result<JSONObject, CIBAError> {
        let outcome = state.withLock { $0.requests.poll(id, client: .ciba(client.id), now: now) }
        switch outcome {
        case .refused(let e): return .failure(e)
        case .issue(let e):
            let idToken = key.compactJWS(header: [("typ", .string("JWT")), ("kid", .string(key.thumbprint))], claims: JSONObject(members: [
                ("iss", .string(settings.issuer)), ("sub", .string(e.principal)), ("aud", .string(client.id)),
                ("iat", .integer(now)), ("exp", .integer(now + settings.tokenTTL)), ("auth_time", .integer(e.decidedAt ?? now)),
                ("urn:openid:params:jwt:claim:auth_req_id", .string(e.id)),
            ]))
            return .success(JSONObject(members: [
                ("access_token", .string(Base64URL.encode(Random.bytes(32)))), ("token_type", .string("Bearer")),
                ("expires_in", .integer(settings.tokenTTL)), ("id_token", .string(idToken)),
            ]))
        }
    }

    /// What the person is asked to decide (`GET /approvals/{id}`); nil when unknown or spent.
    public func details(_ id: String, now: Int64) -> JSONObject? {
        guard let e = state.withLock({ $0.requests.entry(id) }) else { return nil }
        let stateName = e.isExpired(at: now) ? "expired" : e.decision.rawValue
        var m: [(String, JSONValue)] = [
            ("auth_req_id", .string(e.id)), ("state", .string(stateName)), ("principal", .string(e.principal)),
            ("binding_message", .string(e.bindingMessage)), ("expires_at", .integer(e.expiresAt)),
            ("opened_at", .integer(e.createdAt)),
        ]
        switch e.client {
        case .proxy: m.append(("client", .null))
        case .ciba(let c): m.append(("client", .string(c)))
        }
        if let a = e.approval {
            m += [("agent", .string(a.agent)), ("agent_name", a.agentName.map(JSONValue.string) ?? .null), ("organization", a.organization.map(JSONValue.string) ?? .null),
                  ("route", .string(a.route)), ("body_summary", .string(a.bodySummary)),
                  ("request", .object(BoundRequest(a).json))]
        }
        return JSONObject(members: m)
    }

    /// Records the signed decision `receipt` on pending request `id` (`POST /approvals/{id}/decision`).
    public func decide(_ id: String, receipt token: String, now: Int64) -> Result<SignedDecision.Verdict, CIBAError> {
        guard let e = state.withLock({ $0.requests.entry(id) }) else {
            return .failure(CIBAError(.invalidGrant, "approval \(id) is unknown or already used"))
        }
        if e.isExpired(at: now) { return .failure(CIBAError(.expiredToken, "approval \(id) has expired")) }
        guard e.decision == .pending else { return .failure(CIBAError(.invalidGrant, "approval \(id) was already \(e.decision.rawValue)")) }
        guard let k = principals.key(for: e.principal) else {
            return .failure(CIBAError(.accessDenied, "principal \(e.principal) has no key to decide with"))
        }
        let subject = SignedDecision.Subject(id: e.id, principal: e.principal, bindingMessage: e.bindingMessage,
                                             request: e.approval.map(BoundRequest.init), openedAt: e.createdAt, expiresAt: e.expiresAt)
        let verdict: SignedDecision.Verdict, receipt: ApprovalReceipt
        switch SignedDecision.verify(token, on: subject, key: k.key, now: now) {
        case .failure(let r): return .failure(CIBAError(.invalidRequest, r.text))
        case .success(let v): (verdict, receipt) = v
        }
        return recordDecision(id, verdict, receipt, now: now)
    }

    /// Records a verified decision: wakes the held request, pings a ping client.
    func recordDecision(_ id: String, _ verdict: SignedDecision.Verdict, _ receipt: ApprovalReceipt,
                        now: Int64) -> Result<SignedDecision.Verdict, CIBAError> {
        let recorded = state.withLock { s -> Result<(BackchannelRequests.Entry, Readiness?), CIBAError> in
            s.requests.decide(id, approve: verdict == .approve, receipt: receipt, now: now).map { ($0, s.ready.removeValue(forKey: id)) }
        }
        switch recorded {
        case .failure(let err): return .failure(err)
        case .success(let (entry, ready)):
            ready?.fire()
            if case .ciba(let c) = entry.client, let client = clients[c], client.delivery == .ping,
               let endpoint = client.notificationEndpoint, let bearer = entry.notificationToken {
                notify(PingNotification(endpoint: endpoint, bearer: bearer, authReqID: entry.id))
            }
            return .success(verdict)
        }
    }

    /// RFC 6749 §2.3.1 client_secret_basic; secrets compared in constant time.
    public func authenticate(authorization: String?) -> Result<CIBAClientCredentials, CIBAError> {
        let refused = CIBAError(.invalidClient, "client authentication failed (client_secret_basic)")
        guard let v = authorization, v.utf8.count > 6, v.utf8.prefix(6).elementsEqual("basic ".utf8, by: { ($0 | 0x20) == $1 }),
              let decoded = Base64.decode(Array(v.utf8.dropFirst(6))[...]),
              let colon = decoded.firstIndex(of: UInt8(ascii: ":")),
              let id = FormURLEncoded.decodeComponent(decoded[..<colon]),
              let secret = FormURLEncoded.decodeComponent(decoded[(colon + 1)...]) else { return .failure(refused) }
        guard let client = clients[id] else {
            _ = constantTimeEqual(Array(secret.utf8), Array(repeating: 0, count: secret.utf8.count))
            return .failure(refused)
        }
        return constantTimeEqual(Array(secret.utf8), client.secret) ? .success(client) : .failure(refused)
    }

    /// The approval key as a JWK set (RFC 7517 §5), for ID token verification.
    public var jwks: JSONObject {
        let jwk = JSONObject(members: key.publicJWK.members + [("kid", .string(key.thumbprint)), ("alg", .string(key.algorithm.rawValue)),
                                                              ("use", .string("sig"))])
        return JSONObject(members: [("keys", .array([.object(jwk)]))])
    }

    /// OpenID Connect Discovery 1.0 §3 with CIBA §4's members.
    public var discovery: JSONObject {
        let i = settings.issuer
        return JSONObject(members: [
            ("issuer", .string(i)),
            ("backchannel_authentication_endpoint", .string(i + "/bc-authorize")),
            ("token_endpoint", .string(i + "/token")),
            ("jwks_uri", .string(i + "/jwks.json")),
            ("grant_types_supported", .array([.string(CIBAGrant.type)])),
            ("backchannel_token_delivery_modes_supported", .array([.string("poll"), .string("ping")])),
            ("backchannel_user_code_parameter_supported", .bool(false)),
            ("token_endpoint_auth_methods_supported", .array([.string("client_secret_basic")])),
            ("id_token_signing_alg_values_supported", .array([.string(key.algorithm.rawValue)])),
            ("scopes_supported", .array([.string("openid")])),
            ("subject_types_supported", .array([.string("public")])),
            ("response_types_supported", .array([])),
        ])
    }
}

public enum CIBAGrant {
    /// CIBA §10.1.
    public static let type = "urn:openid:params:grant-type:ciba"
}
