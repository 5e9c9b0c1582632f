import MandateCrypto
import MandateHTTP

/// The approval page's HTTP face: `GET /` (the list, or how to sign in), `GET /login?token=…`,
/// `POST /approvals/{id}/web-decision`, `POST /logout`, and `GET /approvals` (JSON, for
/// `mandate approvals list`, with a sign-in token as Bearer). docs/approvals.md.
extension ApprovalEndpoints {
    var issuer: String { service.settings.issuer }

    /// `GET /`.
    func page(_ h: HTTPRequestHead, now: Int64) -> ApprovalResponse {
        let q = h.query.flatMap { FormURLEncoded.parse($0.utf8) } ?? [:]
        let notice = q["decided"].flatMap(ApprovalPage.Notice.init(rawValue:))
        guard let cookie = ApprovalSessions.cookie(in: h.values("Cookie"), named: cookieName), let s = service.session(cookie: cookie, now: now) else {
            return html(200, ApprovalPage.signIn(issuer: issuer, notice: notice == .signedOut ? notice : nil))
        }
        return html(200, ApprovalPage.pending(principal: s.principal, name: service.principals.name(for: s.principal),
                                              service.pending(for: s.principal, now: now), csrf: s.csrf, now: now, notice: notice))
    }

    /// `GET /login?token=JWS`: a session, by a sign-in token signed with the principal's key.
    func login(_ h: HTTPRequestHead, now: Int64) -> ApprovalResponse {
        guard let q = h.query.flatMap({ FormURLEncoded.parse($0.utf8) }), let token = q["token"], !token.isEmpty else {
            return refused(PageRefusal(.invalidLogin, "the sign-in link has no token: make one with mandate approvals login"))
        }
        switch service.signIn(token: Array(token.utf8), now: now) {
        case .failure(let r): return refused(r)
        case .success(let (cookie, s)):
            var r = ApprovalResponse(status: 200, fields: ApprovalPage.signInFields, body: ApprovalPage.signedIn(principal: s.principal,
                                                                                                   name: service.principals.name(for: s.principal)))
            r.fields.append(("Set-Cookie", sessionCookie(cookie, maxAge: ApprovalSessions.lifetime)))
            return r
        }
    }

    /// `POST /logout` (form: csrf).
    func logout(_ h: HTTPRequestHead, _ body: [UInt8], now: Int64) -> ApprovalResponse {
        let cookie: String
        switch sessionForm(h, body, now: now) {
        case .failure(let r): return refused(r)
        case .success(let v): cookie = v.2
        }
        service.signOut(cookie: cookie)
        var r = seeOther("?decided=signed-out")
        r.fields.append(("Set-Cookie", sessionCookie("", maxAge: 0)))
        return r
    }

    /// `POST /approvals/{id}/web-decision` (form: decision=approve|deny, csrf): only the signed-in
    /// principal the approval asks, from this origin, with the session's CSRF token.
    func webDecision(_ id: String, _ h: HTTPRequestHead, _ body: [UInt8], now: Int64) -> ApprovalResponse {
        let s: ApprovalSessions.Session, form: [String: String]
        switch sessionForm(h, body, now: now) {
        case .failure(let r): return refused(r)
        case .success(let v): (s, form, _) = v
        }
        guard let d = form["decision"], let verdict = SignedDecision.Verdict(rawValue: d) else {
            return refused(PageRefusal(.invalidRequest, "decision must be approve or deny"))
        }
        switch service.decideOnPage(id, verdict, principal: s.principal, now: now) {
        case .failure(let r): return refused(r)
        case .success: return seeOther(verdict == .approve ? "?decided=approved" : "?decided=denied")
        }
    }

    /// `GET /approvals`: the principal's pending approvals as JSON, for a fresh sign-in token
    /// sent as `Authorization: Bearer` (RFC 6750 §2.1).
    func list(_ h: HTTPRequestHead, now: Int64) -> ApprovalResponse {
        let auth = h.values("Authorization")
        guard auth.count == 1, let v = auth.first, v.utf8.count > 7,
              v.utf8.prefix(7).elementsEqual("bearer ".utf8, by: { ($0 | 0x20) == $1 }) else {
            return refusedJSON(PageRefusal(.invalidToken, "send a sign-in token (mandate approvals login) as Authorization: Bearer"))
        }
        switch service.authenticate(loginToken: v.utf8.dropFirst(7), now: now) {
        case .failure(var r):
            if r.code == .invalidLogin { r.code = .invalidToken }
            return refusedJSON(r)
        case .success(let principal):
            let items = service.pending(for: principal, now: now).compactMap { service.details($0.id, now: now) }
            return .json(200, JSONObject(members: [("principal", .string(principal)),
                                                   ("approvals", .array(items.map(JSONValue.object)))]), noStore: true)
        }
    }

    /// The session and the form of a POST from the page: same origin, the session cookie, the
    /// session's CSRF token (constant time).
    func sessionForm(_ h: HTTPRequestHead, _ body: [UInt8], now: Int64) -> Result<(ApprovalSessions.Session, [String: String], String), PageRefusal> {
        if let r = crossOrigin(h) { return .failure(r) }
        guard let cookie = ApprovalSessions.cookie(in: h.values("Cookie"), named: cookieName), let s = service.session(cookie: cookie, now: now) else {
            return .failure(PageRefusal(.noSession, "not signed in, or the session has expired"))
        }
        let type = h.value("Content-Type")?.split(separator: ";").first.map { $0.trimmingSpaces.lowercased() }
        guard type == "application/x-www-form-urlencoded", let form = FormURLEncoded.parse(body) else {
            return .failure(PageRefusal(.invalidRequest, "the body must be a form (application/x-www-form-urlencoded), each field once"))
        }
        guard let csrf = form["csrf"], constantTimeEqual(Array(csrf.utf8), Array(s.csrf.utf8)) else {
            return .failure(PageRefusal(.invalidCSRF, "the form's csrf token is not this session's: reload the page and try again"))
        }
        return .success((s, form, cookie))
    }

    /// Fetch Metadata and Origin, when the browser sends them, must say this origin.
    func crossOrigin(_ h: HTTPRequestHead) -> PageRefusal? {
        let origins = h.values("Origin")
        if origins.count > 1 || origins.contains(where: { !sameASCIIText($0, Self.origin(of: issuer)) }) {
            return PageRefusal(.crossOrigin, "the form was sent from another origin than \(Self.origin(of: issuer))")
        }
        let sites = h.values("Sec-Fetch-Site")
        if sites.count > 1 || sites.contains(where: { !sameASCIIText($0, "same-origin") }) {
            return PageRefusal(.crossOrigin, "the form was not sent from this site's own page (Sec-Fetch-Site)")
        }
        return nil
    }

    /// `scheme://host[:port]` of a URL, as a browser serializes it (RFC 6454 §6.2): without the
    /// scheme's default port, which a browser's Origin never names.
    static func origin(of url: String) -> String {
        let u = Array(url.utf8)
        guard let colon = u.firstIndex(of: UInt8(ascii: ":")), u[colon...].starts(with: "://".utf8) else { return url }
        let end = u[(colon + 3)...].firstIndex(of: UInt8(ascii: "/")) ?? u.count
        let o = String(decoding: u[..<end], as: UTF8.self)
        let scheme = o.prefix(while: { $0 != ":" }).lowercased()
        for (s, port) in [("https", ":443"), ("http", ":80")] where scheme == s && o.hasSuffix(port) {
            return String(o.dropLast(port.count))
        }
        return o
    }

    var secure: Bool { issuer.lowercased().hasPrefix("https://") }
    var cookieName: String { ApprovalSessions.cookieName(secure: secure) }

    func sessionCookie(_ value: String, maxAge: Int64) -> String {
        var c = "\(cookieName)=\(value); HttpOnly; SameSite=Strict; Path=/; Max-Age=\(maxAge)"
        if secure { c += "; Secure" }
        return c
    }

    func html(_ status: Int, _ body: [UInt8]) -> ApprovalResponse {
        ApprovalResponse(status: status, fields: ApprovalPage.securityFields, body: body)
    }

    func seeOther(_ query: String) -> ApprovalResponse {
        var r = html(303, [])
        r.fields.append(("Location", issuer + "/" + query))
        return r
    }

    func refused(_ r: PageRefusal) -> ApprovalResponse {
        let id = Self.requestID()
        var out = html(r.status, ApprovalPage.refusal(r, requestID: id, issuer: issuer))
        out.fields.append(("Mandate-Request-Id", id))
        return out
    }

    func refusedJSON(_ r: PageRefusal) -> ApprovalResponse {
        let id = Self.requestID()
        var out = ApprovalResponse.json(r.status, JSONObject(members: [
            ("error", .string(r.code.rawValue)), ("error_description", .string(r.description)), ("request_id", .string(id)),
        ]), noStore: true)
        out.fields.append(("Mandate-Request-Id", id))
        if r.status == 401 { out.fields.append(("WWW-Authenticate", "Bearer realm=\"mandate-approval\", error=\"invalid_token\"")) }
        return out
    }

    static func requestID() -> String { Base64URL.encode(Random.bytes(12)) }
}

/// ASCII case-insensitive equality (origins, fetch metadata tokens).
func sameASCIIText(_ a: String, _ b: String) -> Bool {
    a.utf8.count == b.utf8.count && a.utf8.elementsEqual(b.utf8, by: asciiCaseInsensitiveEqual)
}
