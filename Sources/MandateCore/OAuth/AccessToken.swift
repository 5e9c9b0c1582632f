import MandateHTTP

/// JWT access tokens (RFC 9068) from configured authorization servers, as a verified chain:
/// `sub` is the human principal, the outermost `act` (RFC 8693 §4.1) the agent acting now, and
/// the nested actors before it the rest of the chain. Without `act`, the agent is the client.
public struct AccessTokenRules: Sendable {
    public struct Issuer: Sendable {
        public let settings: ProxyConfig.OAuthIssuer
        public let keys: IssuerKeys
        public init(settings: ProxyConfig.OAuthIssuer, keys: IssuerKeys) { self.settings = settings; self.keys = keys }
    }

    public let issuers: [String: Issuer]
    let defaultAudience: String
    let clockSkew: Int64
    let limits: CompactJWS.Limits

    public init(issuers: [Issuer], defaultAudience: String, clockSkew: Int64, limits: CompactJWS.Limits) {
        self.issuers = Dictionary(issuers.map { ($0.settings.issuer, $0) }) { a, _ in a }
        self.defaultAudience = defaultAudience; self.clockSkew = clockSkew; self.limits = limits
    }

    /// RFC 9068 §2.1: `at+jwt` (or its full media type).
    public static func isAccessToken(_ header: JSONObject) -> Bool {
        guard let typ = header["typ"]?.string else { return false }
        return typ.utf8.elementsEqual("at+jwt".utf8, by: asciiCaseInsensitiveEqual)
            || typ.utf8.elementsEqual("application/at+jwt".utf8, by: asciiCaseInsensitiveEqual)
    }

    /// RFC 9068 §4, RFC 8725, RFC 8693 §4.1. The key is the issuer's, by kid, never the token's.
    public func verify(_ raw: ArraySlice<UInt8>, now: Int64) -> ChainWalker.Outcome {
        func refuse(_ why: String) -> ChainWalker.Outcome { .refused(Denial(.invalidToken, "access token: " + why)) }
        let jws: CompactJWS
        switch CompactJWS.parse(raw, limits: limits) {
        case .success(let j): jws = j
        case .failure(let r): return refuse(r.description)
        }
        let h = jws.header, c = jws.claims
        guard Self.isAccessToken(h) else { return refuse("typ must be at+jwt") }
        for p in ["jwk", "jku", "x5u", "x5c"] where h[p] != nil { return refuse("header parameter '\(p)' is not allowed") }
        guard let iss = c["iss"]?.string, let issuer = issuers[iss] else { return refuse("iss is not a configured issuer") }
        guard let kid = h["kid"]?.string else { return refuse("kid is required") }
        // Cheap claims first: an expired token costs no key fetch.
        let exp: Int64
        switch numericDate(c, "exp") {
        case .present(let e): exp = e
        default: return refuse("exp is required (a NumericDate)")
        }
        if now >= exp + clockSkew { return refuse("expired") }
        // RFC 9068 §2.2: iat and jti are required too.
        guard case .present = numericDate(c, "iat") else { return refuse("iat is required (a NumericDate)") }
        guard let jti = c["jti"]?.string, !jti.isEmpty else { return refuse("jti is required (RFC 9068 §2.2)") }
        var notBefore = now
        for name in ["nbf", "iat"] {
            switch numericDate(c, name) {
            case .absent: break
            case .invalid: return refuse("\(name) must be a NumericDate")
            case .present(let t):
                if t > now + clockSkew { return refuse("\(name) is in the future") }
                notBefore = min(notBefore, t)
            }
        }
        let audience = issuer.settings.audience ?? defaultAudience
        switch c["aud"] {
        case .string(let a)? where sameBytes(a, audience): break
        case .array(let list)? where list.contains(where: { $0.string.map { sameBytes($0, audience) } ?? false }): break
        default: return refuse("aud does not include \(audience)")
        }
        let who: Identity
        switch Self.identity(c, settings: issuer.settings) {
        case .success(let i): who = i
        case .failure(let r): return refuse(r.text)
        }
        switch issuer.keys.key(kid) {
        case .pending(let r): return .pending(r)
        case .unavailable(let why):
            var d = Denial(.temporarilyUnavailable, "access token: " + why)
            d.retryAfter = 1
            return .refused(d)
        case .unknownKid: return refuse("kid is not in the issuer's JWKS")
        case .key(let key):
            // The algorithm is the key's (one per key): a mismatching alg is refused by verify.
            if case .failure(let r) = jws.verify(with: key) { return refuse(r.description) }
        }
        var chain = who.chain(issuer: iss, notBefore: notBefore, expiresAt: exp, reverifyAt: now + Int64(issuer.settings.keys.refresh))
        chain.jtis = [jti]
        return .verified(chain)
    }

    /// Who a token (its JWT claims, or an introspection response) says is calling.
    struct Identity {
        var sub: String
        var client: String?
        var scopes: [String]
        /// Outermost (current) first.
        var actors: [String]
        var jkt: String?
        var x5t: String?

        func chain(issuer: String, notBefore: Int64, expiresAt: Int64, reverifyAt: Int64) -> VerifiedChain {
            let agent = actors.first ?? client ?? sub
            let dids = actors.isEmpty ? [sub] + (client.map { [$0] } ?? []) : [sub] + actors.reversed()
            return VerifiedChain(principal: sub, agent: agent, dids: dids, scopes: scopes, proofKeyThumbprint: jkt ?? "",
                                 notBefore: notBefore, expiresAt: expiresAt, ancestry: [], certificateThumbprint: x5t,
                                 certificateKeys: nil, resolvedUntil: reverifyAt, issuer: issuer)
        }
    }

    /// RFC 9068 §2.2 and RFC 7662 §2.2 claims (`sub`, `client_id`, `scope`, `cnf`), RFC 8693 `act`.
    static func identity(_ c: JSONObject, settings: ProxyConfig.OAuthIssuer, requireClient: Bool = true) -> Result<Identity, Reason> {
        guard let sub = c["sub"]?.string, isSafe(sub) else { return .failure(Reason("sub is required (printable, no comma, not a DID)")) }
        let client = c["client_id"]?.string
        if let client, !isSafe(client) { return .failure(Reason("client_id must be printable, without comma, not a DID")) }
        if requireClient && client == nil { return .failure(Reason("client_id is required (RFC 9068 §2.2)")) }
        var scopes: [String] = []
        if let s = c["scope"] {
            guard let text = s.string else { return .failure(Reason("scope must be a string")) }
            guard ScopeToken.isScope(text) else { return .failure(Reason("scope has a character outside RFC 6749 scope-token")) }
            scopes = text.split(separator: " ").map(String.init)
        }
        // RFC 8693 §4.1: the outermost act is the current actor; nested ones came before it.
        var actors: [String] = []
        var act = c["act"]
        while let a = act {
            guard let o = a.object, let who = o["sub"]?.string, isSafe(who) else {
                return .failure(Reason("act must be an object with a sub (printable, no comma, not a DID)"))
            }
            actors.append(who)
            guard actors.count <= settings.maxActDepth else { return .failure(Reason("act is nested deeper than \(settings.maxActDepth)")) }
            act = o["act"]
        }
        var jkt: String?, x5t: String?
        if let cnf = c["cnf"] {
            guard let o = cnf.object else { return .failure(Reason("cnf must be an object")) }
            jkt = o["jkt"]?.string; x5t = o["x5t#S256"]?.string
            guard (jkt == nil) != (x5t == nil) else { return .failure(Reason("cnf must hold exactly one of jkt and x5t#S256")) }
        }
        return .success(Identity(sub: sub, client: client, scopes: scopes, actors: actors, jkt: jkt, x5t: x5t))
    }

    /// Into headers and the log: printable ASCII without comma (the chain's separator), ≤ 256 bytes.
    /// Not a DID: a DID principal or agent is proven by its key (a chain), never named by an issuer,
    /// else a token could open a route that admits an enrolled principal or agent by its DID.
    static func isSafe(_ s: String) -> Bool {
        (1...256).contains(s.utf8.count) && s.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f && $0 != 0x2c }
            && !s.utf8.starts(with: "did:".utf8)
    }
}
