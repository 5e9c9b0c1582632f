import MandateCrypto

/// Who asked for an authentication request: a configured `ciba_client`, or the proxy itself
/// (an `effect approve` route). An auth_req_id answers only the client it was issued to (CIBA §11).
public enum BackchannelClient: Sendable, Hashable {
    case proxy
    case ciba(String)
}

/// An error of the CIBA token endpoint (§11) or of the backchannel authentication endpoint (§13),
/// with its HTTP status: a refusal as a value.
public struct CIBAError: Error, Sendable, Equatable {
    public enum Code: String, Sendable {
        // §11 token errors (with RFC 6749 §5.2's).
        case authorizationPending = "authorization_pending"
        case slowDown = "slow_down"
        case expiredToken = "expired_token"
        case accessDenied = "access_denied"
        case invalidGrant = "invalid_grant"
        case unsupportedGrantType = "unsupported_grant_type"
        // §13 authentication errors.
        case invalidRequest = "invalid_request"
        case invalidScope = "invalid_scope"
        case unknownUserID = "unknown_user_id"
        case unauthorizedClient = "unauthorized_client"
        case invalidBindingMessage = "invalid_binding_message"
        case invalidClient = "invalid_client"
        // RFC 6749 §4.1.2.1: the service is at capacity.
        case temporarilyUnavailable = "temporarily_unavailable"
    }

    public var code: Code
    public var description: String
    public var status: Int

    public init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
        switch code {
        case .invalidClient: status = 401                  // §13, RFC 6749 §5.2
        case .accessDenied: status = 403                   // §13; the token endpoint answers 400 (§11), set there
        case .temporarilyUnavailable: status = 503
        default: status = 400
        }
    }

    /// `{"error", "error_description"}` (RFC 6749 §5.2).
    public var jsonBody: [UInt8] {
        var s = "{\"error\":"
        JSONText.appendString(code.rawValue, to: &s)
        s += ",\"error_description\":"
        JSONText.appendString(description, to: &s)
        s += "}\n"
        return Array(s.utf8)
    }
}

/// The authentication requests of the built-in approval service (OpenID CIBA Core 1.0): a pure
/// state machine with an explicit clock (Unix seconds), no sockets.
public struct BackchannelRequests: Sendable {
    public struct Settings: Sendable, Equatable {
        /// expires_in when the client asks for none (§7.3); also the most it may ask for.
        public var expiresIn: Int64
        /// The polling interval (§7.3).
        public var interval: Int64
        /// At most this many requests are kept (pending, decided, or expired and remembered).
        public var capacity: Int
        /// An expired or decided request is remembered this long past its expiry, so a late poll
        /// gets expired_token rather than invalid_grant.
        public var retention: Int64
        /// At most this many requests wait for one principal's answer at once: one agent (or
        /// client) asking without end fills that person's share, never everyone's capacity.
        public var perPrincipal: Int
        public init(expiresIn: Int64 = 300, interval: Int64 = 5, capacity: Int = 10_000, retention: Int64 = 600,
                    perPrincipal: Int = 100) {
            self.expiresIn = expiresIn; self.interval = interval; self.capacity = capacity; self.retention = retention
            self.perPrincipal = perPrincipal
        }
    }

    public enum Decision: String, Sendable, Equatable {
        case pending, approved, denied
    }

    /// One auth_req_id and what it is bound to.
    public struct Entry: Sendable {
        public let id: String
        public let client: BackchannelClient
        /// The principal's DID (from login_hint, or the chain's root).
        public let principal: String
        public let bindingMessage: String
        /// The exact request, when the proxy asked.
        public let approval: ApprovalRequest?
        /// Ping mode (§10.2): the bearer token for the client's notification endpoint.
        public let notificationToken: String?
        public let createdAt: Int64
        public let expiresAt: Int64
        /// Grows by 5 s with each slow_down (§11).
        public internal(set) var interval: Int64
        public internal(set) var lastPoll: Int64?
        public internal(set) var decision: Decision = .pending
        public internal(set) var decidedAt: Int64?
        /// The signed decision (approve or deny).
        public internal(set) var receipt: ApprovalReceipt?

        public func isExpired(at now: Int64) -> Bool { now >= expiresAt }
    }

    /// What a token request gets (§10.1.1 on success, §11 otherwise).
    public enum TokenOutcome: Sendable {
        /// The request was approved: the tokens may be issued, and the id is now spent.
        case issue(Entry)
        case refused(CIBAError)
    }

    public let settings: Settings
    public private(set) var entries: [String: Entry] = [:]
    private var lastSweep: Int64 = .min

    public init(settings: Settings) { self.settings = settings }

    /// 32 random bytes, base64url: 256 bits (§7.3 asks for at least 128). Never beginning with
    /// `-`, which `mandate approve ID` would take for an option (1 id in 64 could not be decided).
    public static func newID() -> String {
        while true {
            let id = Base64URL.encode(Random.bytes(32))
            if id.utf8.first != UInt8(ascii: "-") { return id }
        }
    }

    /// §7: a new request for `principal`. `requestedExpiry` (§7.1) is honoured up to
    /// `settings.expiresIn`.
    public mutating func open(client: BackchannelClient, principal: String, bindingMessage: String,
                              approval: ApprovalRequest? = nil, notificationToken: String? = nil,
                              requestedExpiry: Int64? = nil, now: Int64, id: String = newID()) -> Result<Entry, CIBAError> {
        sweep(now: now)
        if entries.count >= settings.capacity { entries = entries.filter { !$0.value.isExpired(at: now) } }
        guard entries.count < settings.capacity else {
            return .failure(CIBAError(.temporarilyUnavailable, "too many approvals are waiting; try again later"))
        }
        let waiting = entries.values.reduce(0) { n, e in
            n + (e.decision == .pending && !e.isExpired(at: now) && e.principal == principal ? 1 : 0)
        }
        guard waiting < settings.perPrincipal else {
            return .failure(CIBAError(.temporarilyUnavailable, "too many approvals are waiting for this principal; try again later"))
        }
        guard entries[id] == nil else { return .failure(CIBAError(.temporarilyUnavailable, "auth_req_id collision")) }
        let lifetime = min(max(1, requestedExpiry ?? settings.expiresIn), settings.expiresIn)
        let e = Entry(id: id, client: client, principal: principal, bindingMessage: bindingMessage, approval: approval,
                      notificationToken: notificationToken, createdAt: now, expiresAt: now + lifetime,
                      interval: settings.interval)
        entries[id] = e
        return .success(e)
    }

    public func entry(_ id: String) -> Entry? { entries[id] }

    /// Records the principal's decision on a pending, unexpired request (once).
    public mutating func decide(_ id: String, approve: Bool, receipt: ApprovalReceipt, now: Int64) -> Result<Entry, CIBAError> {
        guard var e = entries[id] else { return .failure(CIBAError(.invalidGrant, "unknown auth_req_id")) }
        guard !e.isExpired(at: now) else { return .failure(CIBAError(.expiredToken, "the auth_req_id has expired")) }
        guard e.decision == .pending else { return .failure(CIBAError(.invalidGrant, "the request was already \(e.decision.rawValue)")) }
        e.decision = approve ? .approved : .denied
        e.decidedAt = now
        e.receipt = receipt
        entries[id] = e
        return .success(e)
    }

    /// §10.1 / §11: a token request by `client` for `id`. With `pacing` (a polling client), a
    /// pending request polled sooner than its interval answers slow_down and the interval grows by 5 s.
    public mutating func poll(_ id: String, client: BackchannelClient, now: Int64, pacing: Bool = true) -> TokenOutcome {
        // §11: invalid_grant when the auth_req_id is invalid (unknown, spent) or was issued to another client.
        guard var e = entries[id], e.client == client else {
            return .refused(CIBAError(.invalidGrant, "auth_req_id is unknown, already used, or was issued to another client"))
        }
        if e.isExpired(at: now) { return .refused(CIBAError(.expiredToken, "the auth_req_id has expired; make a new authentication request")) }
        switch e.decision {
        case .denied:
            var err = CIBAError(.accessDenied, "the end-user denied the authorization request")
            err.status = 400  // §11: every token error is a 400
            return .refused(err)
        case .approved:
            entries[id] = nil  // single use: the id is spent once the tokens are issued
            return .issue(e)
        case .pending:
            defer { entries[id] = e }
            if pacing, let last = e.lastPoll, now - last < e.interval {
                e.lastPoll = now
                e.interval += 5
                return .refused(CIBAError(.slowDown, "polling too fast: wait \(e.interval) seconds between token requests"))
            }
            e.lastPoll = now
            return .refused(CIBAError(.authorizationPending, "the end-user has not yet decided"))
        }
    }

    /// Forgets requests that have been expired for longer than `retention` (at most once a second).
    public mutating func sweep(now: Int64) {
        guard now > lastSweep else { return }
        lastSweep = now
        entries = entries.filter { now < $0.value.expiresAt + settings.retention }
    }

    /// Pending requests whose expiry has come, for those waiting on them.
    public func expired(at now: Int64) -> [String] {
        entries.values.filter { $0.decision == .pending && $0.isExpired(at: now) }.map(\.id)
    }
}
