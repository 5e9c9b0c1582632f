import MandateHTTP

/// One answer of the approval listener.
public struct ApprovalResponse: Sendable {
    public var status: Int
    public var fields: [(String, String)]
    public var body: [UInt8]
    public init(status: Int, fields: [(String, String)] = [], body: [UInt8]) { self.status = status; self.fields = fields; self.body = body }

    static func json(_ status: Int, _ o: JSONObject, noStore: Bool = false) -> ApprovalResponse {
        var f = [("Content-Type", "application/json")]
        if noStore { f += [("Cache-Control", "no-store"), ("Pragma", "no-cache")] }
        return ApprovalResponse(status: status, fields: f, body: o.serialized() + [0x0A])
    }

    static func error(_ e: CIBAError, noStore: Bool = false) -> ApprovalResponse {
        var f = [("Content-Type", "application/json")]
        if noStore { f += [("Cache-Control", "no-store"), ("Pragma", "no-cache")] }
        // RFC 6749 §5.2: a 401 invalid_client names the scheme the client should use.
        if e.status == 401 { f.append(("WWW-Authenticate", "Basic realm=\"mandate-approval\"")) }
        return ApprovalResponse(status: e.status, fields: f, body: e.jsonBody)
    }
}

/// The HTTP face of `ApprovalService`, without sockets: `POST /bc-authorize` (CIBA §7),
/// `POST /token` (§10.1), `GET /approvals/{id}` and `POST /approvals/{id}/decision` (for
/// `mandate approve`/`deny`), `/.well-known/openid-configuration` and `/jwks.json`; and the
/// approval page (ApprovalPageEndpoints.swift).
public struct ApprovalEndpoints: Sendable {
    public let service: ApprovalService
    public init(_ service: ApprovalService) { self.service = service }

    public func respond(method: String, path: Substring, query: Substring? = nil, headers: [HTTPHeader], body: [UInt8],
                        now: Int64) -> ApprovalResponse {
        let head = HTTPRequestHead(method: method, target: String(path) + (query.map { "?" + $0 } ?? ""), headers: headers)
        switch (method, path) {
        case ("GET", "/"): return page(head, now: now)
        case ("GET", "/login"): return login(head, now: now)
        case ("POST", "/logout"): return logout(head, body, now: now)
        case ("GET", "/approvals"): return list(head, now: now)
        case (_, "/"), (_, "/login"), (_, "/approvals"): return notAllowed("GET")
        case (_, "/logout"): return notAllowed("POST")
        case ("POST", "/bc-authorize"): return backchannelAuthentication(head, body, now: now)
        case ("POST", "/token"): return token(head, body, now: now)
        case ("GET", "/.well-known/openid-configuration"): return .json(200, service.discovery)
        case ("GET", "/jwks.json"):
            var r = ApprovalResponse.json(200, service.jwks)
            r.fields = [("Content-Type", "application/jwk-set+json")]
            return r
        case (_, "/bc-authorize"), (_, "/token"): return notAllowed("POST")
        case (_, "/.well-known/openid-configuration"), (_, "/jwks.json"): return notAllowed("GET")
        default: break
        }
        guard path.hasPrefix("/approvals/") else { return notFound() }
        let rest = path.dropFirst("/approvals/".count)
        if rest.hasSuffix("/web-decision") {
            let id = String(rest.dropLast("/web-decision".count))
            guard method == "POST" else { return notAllowed("POST") }
            return webDecision(id, head, body, now: now)
        }
        if rest.hasSuffix("/decision") {
            let id = String(rest.dropLast("/decision".count))
            guard method == "POST" else { return notAllowed("POST") }
            return decision(id, head, body, now: now)
        }
        guard !rest.contains("/") else { return notFound() }
        guard method == "GET" else { return notAllowed("GET") }
        guard let d = service.details(String(rest), now: now) else {
            var r = ApprovalResponse.error(CIBAError(.invalidGrant, "approval \(rest) is unknown or already used"))
            r.status = 404
            return r
        }
        return .json(200, d, noStore: true)
    }

    /// §7.1, authenticated as in §7.1's "client authentication", parameters once each.
    func backchannelAuthentication(_ h: HTTPRequestHead, _ body: [UInt8], now: Int64) -> ApprovalResponse {
        let client: CIBAClientCredentials, p: [String: String]
        switch authenticatedForm(h, body) {
        case .failure(let e): return .error(e)
        case .success(let v): (client, p) = v
        }
        switch service.authorize(client: client, p, now: now) {
        case .failure(let e): return .error(e)
        case .success(let e):
            // §7.3
            return .json(200, JSONObject(members: [("auth_req_id", .string(e.id)), ("expires_in", .integer(e.expiresAt - now)),
                                                   ("interval", .integer(e.interval))]), noStore: true)
        }
    }

    /// §10.1: grant_type urn:openid:params:grant-type:ciba and auth_req_id.
    func token(_ h: HTTPRequestHead, _ body: [UInt8], now: Int64) -> ApprovalResponse {
        let client: CIBAClientCredentials, p: [String: String]
        switch authenticatedForm(h, body) {
        case .failure(let e): return .error(e, noStore: true)
        case .success(let v): (client, p) = v
        }
        guard let grant = p["grant_type"] else { return .error(CIBAError(.invalidRequest, "grant_type is required"), noStore: true) }
        guard grant == CIBAGrant.type else {
            return .error(CIBAError(.unsupportedGrantType, "only \(CIBAGrant.type) is supported"), noStore: true)
        }
        guard let id = p["auth_req_id"], !id.isEmpty else { return .error(CIBAError(.invalidRequest, "auth_req_id is required"), noStore: true) }
        switch service.token(client: client, id: id, now: now) {
        case .failure(let e): return .error(e, noStore: true)
        case .success(let o): return .json(200, o, noStore: true)  // §10.1.1, RFC 6749 §5.1
        }
    }

    func decision(_ id: String, _ h: HTTPRequestHead, _ body: [UInt8], now: Int64) -> ApprovalResponse {
        guard case .success(let o) = StrictJSON.parseObject(body), let receipt = o["receipt"]?.string else {
            return .error(CIBAError(.invalidRequest, "the body must be a JSON object {\"receipt\": \"<JWS>\"}"))
        }
        switch service.decide(id, receipt: receipt, now: now) {
        case .failure(var e):
            if e.code == .invalidGrant { e.status = 404 }
            return .error(e)
        case .success(let v):
            return .json(200, JSONObject(members: [("auth_req_id", .string(id)), ("state", .string(v == .approve ? "approved" : "denied"))]))
        }
    }

    /// The client (HTTP Basic) and the form's parameters.
    func authenticatedForm(_ h: HTTPRequestHead, _ body: [UInt8]) -> Result<(CIBAClientCredentials, [String: String]), CIBAError> {
        let auth = h.values("Authorization")
        guard auth.count <= 1 else { return .failure(CIBAError(.invalidRequest, "Authorization appears more than once")) }
        let client: CIBAClientCredentials
        switch service.authenticate(authorization: auth.first) {
        case .failure(let e): return .failure(e)
        case .success(let c): client = c
        }
        let type = h.value("Content-Type")?.split(separator: ";").first.map { $0.trimmingSpaces.lowercased() }
        guard type == "application/x-www-form-urlencoded" else {
            return .failure(CIBAError(.invalidRequest, "the body must be application/x-www-form-urlencoded"))
        }
        guard let p = FormURLEncoded.parse(body) else {
            return .failure(CIBAError(.invalidRequest, "the form is malformed, or repeats a parameter"))
        }
        // RFC 6749 §2.3: one authentication method per request.
        if p["client_secret"] != nil { return .failure(CIBAError(.invalidRequest, "authenticate with HTTP Basic only, not client_secret in the body")) }
        if let id = p["client_id"], id != client.id { return .failure(CIBAError(.invalidRequest, "client_id does not match the authenticated client")) }
        return .success((client, p))
    }

    func notFound() -> ApprovalResponse {
        var r = ApprovalResponse.error(CIBAError(.invalidRequest, "not found"))
        r.status = 404
        return r
    }

    func notAllowed(_ allow: String) -> ApprovalResponse {
        var r = ApprovalResponse.error(CIBAError(.invalidRequest, "this endpoint answers \(allow)"))
        r.status = 405
        r.fields.append(("Allow", allow))
        return r
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var s = self
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return s
    }
}
