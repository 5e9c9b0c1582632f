import MandateCrypto

/// The approval page's logic: signing in with the principal's key, sessions, and decisions made
/// on the page, recorded with a receipt signed by the service (docs/approvals.md).
extension ApprovalService {
    /// Verifies a sign-in token (`ApprovalLogin`) and spends its jti: a token signs in once.
    public func authenticate(loginToken token: some Collection<UInt8>, now: Int64) -> Result<String, PageRefusal> {
        let v: ApprovalLogin.Verified
        switch ApprovalLogin.verify(token, audience: settings.issuer, principals: principals, now: now) {
        case .failure(let r): return .failure(PageRefusal(.invalidLogin, r.text))
        case .success(let ok): v = ok
        }
        switch logins.claim(ReplayKey(thumbprint: v.principal, jti: v.jti), expiresAt: v.expiresAt + 30, now: now) {
        case .fresh: return .success(v.principal)
        case .replayed: return .failure(PageRefusal(.invalidLogin, "this sign-in token was already used; make a new one"))
        case .full: return .failure(PageRefusal(.temporarilyUnavailable, "too many sign-ins at once; try again in a few minutes"))
        }
    }

    /// `GET /login?token=…`: a new session for the token's principal; the cookie value is returned once.
    public func signIn(token: some Collection<UInt8>, now: Int64) -> Result<(cookie: String, session: ApprovalSessions.Session), PageRefusal> {
        authenticate(loginToken: token, now: now).map { principal in
            state.withLock { $0.sessions.open(principal: principal, now: now) }
        }
    }

    /// The session a cookie names, while its principal is still one of the service's.
    public func session(cookie: String, now: Int64) -> ApprovalSessions.Session? {
        guard let s = state.withLock({ $0.sessions.session(cookie: cookie, now: now) }),
              principals.key(for: s.principal) != nil else { return nil }
        return s
    }

    public func signOut(cookie: String) { state.withLock { $0.sessions.close(cookie: cookie) } }

    /// The principal's undecided, unexpired approvals, newest first.
    public func pending(for principal: String, now: Int64) -> [BackchannelRequests.Entry] {
        state.withLock { s in
            s.requests.entries.values.filter { sameBytes($0.principal, principal) && $0.decision == .pending && !$0.isExpired(at: now) }
        }.sorted { ($0.createdAt, $0.id) > ($1.createdAt, $1.id) }
    }

    /// A decision made on the page by the signed-in `principal`: recorded like a CLI decision,
    /// with a receipt signed by approval.key (`SignedDecision.signOnPage`).
    public func decideOnPage(_ id: String, _ verdict: SignedDecision.Verdict, principal: String,
                             now: Int64) -> Result<ApprovalReceipt, PageRefusal> {
        guard let e = state.withLock({ $0.requests.entry(id) }) else {
            return .failure(PageRefusal(.unknownApproval, "this approval is unknown or was already used"))
        }
        // The id is no secret (the agent has it): only the session's principal decides.
        guard sameBytes(e.principal, principal) else {
            return .failure(PageRefusal(.notYourApproval, "this approval is asked of another principal, not of \(principal)"))
        }
        if e.isExpired(at: now) { return .failure(PageRefusal(.approvalExpired, "this approval expired before it was decided")) }
        guard e.decision == .pending else { return .failure(PageRefusal(.alreadyDecided, "this approval was already \(e.decision.rawValue)")) }
        let subject = SignedDecision.Subject(id: e.id, principal: e.principal, bindingMessage: e.bindingMessage,
                                             request: e.approval.map(BoundRequest.init), openedAt: e.createdAt, expiresAt: e.expiresAt)
        let token = SignedDecision.signOnPage(verdict, on: subject, serviceKey: key, issuer: settings.issuer, issuedAt: now)
        let receipt = ApprovalReceipt(id: id, approver: e.principal, token: token, hash: Base64URL.encode(SHA256.hash(Array(token.utf8))))
        switch recordDecision(id, verdict, receipt, now: now) {
        case .success: return .success(receipt)
        case .failure(let err):
            // Decided or expired between the check and the record.
            return .failure(PageRefusal(err.code == .expiredToken ? .approvalExpired : .alreadyDecided, err.description))
        }
    }
}
