import MandateCrypto

/// What a decision is bound to: the exact request (docs/approvals.md). Two requests that differ
/// in method, URL, body, chain or delegations are different actions.
public struct BoundRequest: Sendable, Equatable {
    public var method: String
    public var url: String
    public var bodySHA256: String
    public var chain: [String]
    public var jtis: [String]

    public init(method: String, url: String, bodySHA256: String, chain: [String], jtis: [String]) {
        self.method = method; self.url = url; self.bodySHA256 = bodySHA256; self.chain = chain; self.jtis = jtis
    }

    public init(_ r: ApprovalRequest) {
        self.init(method: r.method, url: r.url, bodySHA256: r.bodySHA256, chain: r.chain, jtis: r.jtis)
    }

    public var json: JSONObject {
        JSONObject(members: [
            ("method", .string(method)), ("url", .string(url)), ("body_sha256", .string(bodySHA256)),
            ("chain", .array(chain.map(JSONValue.string))), ("jtis", .array(jtis.map(JSONValue.string))),
        ])
    }

    /// From `json`'s members (in any order; other members refuse it: a receipt binds exactly these).
    public init?(json o: JSONObject) {
        guard Set(o.names) == ["method", "url", "body_sha256", "chain", "jtis"], o.names.count == 5,
              let m = o["method"]?.string, let u = o["url"]?.string, let b = o["body_sha256"]?.string,
              let c = o["chain"].flatMap(stringArray), let j = o["jtis"].flatMap(stringArray) else { return nil }
        self.init(method: m, url: u, bodySHA256: b, chain: c, jtis: j)
    }

    /// Byte for byte (String's == would match canonically equivalent spellings).
    public func same(_ o: BoundRequest) -> Bool {
        sameBytes(method, o.method) && sameBytes(url, o.url) && sameBytes(bodySHA256, o.bodySHA256)
            && chain.count == o.chain.count && zip(chain, o.chain).allSatisfy(sameBytes)
            && jtis.count == o.jtis.count && zip(jtis, o.jtis).allSatisfy(sameBytes)
    }
}

func stringArray(_ v: JSONValue) -> [String]? {
    guard let a = v.array else { return nil }
    var out: [String] = []
    for e in a {
        guard let s = e.string else { return nil }
        out.append(s)
    }
    return out
}

/// A principal's decision on one pending approval, signed with the principal's key: a compact
/// JWS with `typ` `approval+jwt` (docs/approvals.md).
public enum SignedDecision {
    public static let mediaType = "approval+jwt"

    public enum Verdict: String, Sendable, Equatable {
        case approve, deny
    }

    /// What the signer answers: the approval's id, its principal, the binding message shown, and
    /// the request (absent for an outside CIBA client's request, which names none).
    public struct Subject: Sendable, Equatable {
        public var id: String
        public var principal: String
        public var bindingMessage: String
        public var request: BoundRequest?
        /// When the approval was opened and when it expires: a receipt lies within.
        public var openedAt: Int64
        public var expiresAt: Int64
        public init(id: String, principal: String, bindingMessage: String, request: BoundRequest?, openedAt: Int64, expiresAt: Int64) {
            self.id = id; self.principal = principal; self.bindingMessage = bindingMessage; self.request = request
            self.openedAt = openedAt; self.expiresAt = expiresAt
        }
    }

    /// The receipt `mandate approve`/`deny` sends. `kid`: the principal's verification method.
    public static func sign(_ verdict: Verdict, on s: Subject, key: SigningKey, kid: String?, issuedAt: Int64,
                            ttl: Int64 = 300) -> String {
        var claims: [(String, JSONValue)] = [
            ("iss", .string(s.principal)), ("sub", .string(s.id)), ("decision", .string(verdict.rawValue)),
            ("binding_message", .string(s.bindingMessage)),
        ]
        if let r = s.request { claims.append(("request", .object(r.json))) }
        claims += [("iat", .integer(issuedAt)), ("exp", .integer(min(issuedAt + ttl, s.expiresAt)))]
        var header: [(String, JSONValue)] = [("typ", .string(mediaType))]
        if let kid { header.append(("kid", .string(kid))) }
        return key.compactJWS(header: header, claims: JSONObject(members: claims))
    }

    /// A decision made on the approval page by the signed-in principal: signed with the service's
    /// own key (approval.key, `kid` its thumbprint as in jwks.json), `iss` the service's public_url,
    /// `approver` the principal, `via` `web`; the other claims as in the principal's receipt.
    public static func signOnPage(_ verdict: Verdict, on s: Subject, serviceKey: SigningKey, issuer: String, issuedAt: Int64,
                                  ttl: Int64 = 300) -> String {
        var claims: [(String, JSONValue)] = [
            ("iss", .string(issuer)), ("sub", .string(s.id)), ("approver", .string(s.principal)), ("via", .string("web")),
            ("decision", .string(verdict.rawValue)), ("binding_message", .string(s.bindingMessage)),
        ]
        if let r = s.request { claims.append(("request", .object(r.json))) }
        claims += [("iat", .integer(issuedAt)), ("exp", .integer(max(issuedAt, min(issuedAt + ttl, s.expiresAt))))]
        return serviceKey.compactJWS(header: [("typ", .string(mediaType)), ("kid", .string(serviceKey.thumbprint))],
                                     claims: JSONObject(members: claims))
    }

    /// Checks `token` as the decision on `s`, with `key`: the principal's key as enrolled, never
    /// one the token names; its algorithm pinned by the key (RFC 8725 §3.1). Every bound member must
    /// equal the approval's byte for byte.
    public static func verify(_ token: String, on s: Subject, key: VerificationKey, now: Int64,
                              skew: Int64 = 30) -> Result<(Verdict, ApprovalReceipt), Reason> {
        let bytes = Array(token.utf8)
        let jws: CompactJWS
        switch CompactJWS.parse(bytes[...], limits: CompactJWS.Limits(token: 32 << 10, header: 2048)) {
        case .success(let j): jws = j
        case .failure(let e): return .failure(Reason("the receipt is not a valid JWS: \(e.description)"))
        }
        guard jws.header["typ"]?.string == mediaType else { return .failure(Reason("the receipt's typ must be \(mediaType)")) }
        // RFC 8725 §3.10: the key is the enrolled principal's; a token never supplies one.
        for name in ["jwk", "jku", "x5u", "x5c"] where jws.header[name] != nil {
            return .failure(Reason("the receipt's header may not carry \(name): the key is the principal's"))
        }
        if let kid = jws.header["kid"] {
            guard let k = kid.string, k.hasPrefix(s.principal + "#") else {
                return .failure(Reason("the receipt's kid is not a key of \(s.principal)"))
            }
        }
        if case .failure(let e) = jws.verify(with: key) {
            return .failure(Reason("the receipt is not signed by \(s.principal)'s key (\(e.description))"))
        }
        let c = jws.claims
        guard let iss = c["iss"]?.string, sameBytes(iss, s.principal) else {
            return .failure(Reason("the receipt's iss is not the approval's principal \(s.principal)"))
        }
        guard let sub = c["sub"]?.string, sameBytes(sub, s.id) else { return .failure(Reason("the receipt is for another approval")) }
        guard let d = c["decision"]?.string, let verdict = Verdict(rawValue: d) else {
            return .failure(Reason("the receipt's decision must be approve or deny"))
        }
        guard let m = c["binding_message"]?.string, sameBytes(m, s.bindingMessage) else {
            return .failure(Reason("the receipt's binding_message is not the one shown"))
        }
        switch (c["request"], s.request) {
        case (nil, nil): break
        case (let v?, let expected?):
            guard let o = v.object, let got = BoundRequest(json: o) else {
                return .failure(Reason("the receipt's request must hold exactly method, url, body_sha256, chain and jtis"))
            }
            guard got.same(expected) else { return .failure(Reason("the receipt is for another request (method, URL, body or chain differ)")) }
        case (nil, _?): return .failure(Reason("the receipt does not name the request"))
        case (_?, nil): return .failure(Reason("the receipt names a request this approval does not have"))
        }
        guard let iat = c["iat"]?.integer, let exp = c["exp"]?.integer else {
            return .failure(Reason("the receipt needs integer iat and exp"))
        }
        guard iat <= now + skew else { return .failure(Reason("the receipt is issued in the future")) }
        guard iat >= s.openedAt - skew else { return .failure(Reason("the receipt was issued before the approval was opened")) }
        guard exp > now else { return .failure(Reason("the receipt has expired")) }
        guard exp <= s.expiresAt, iat <= exp else { return .failure(Reason("the receipt outlives the approval")) }
        let receipt = ApprovalReceipt(id: s.id, approver: iss, token: token, hash: Base64URL.encode(SHA256.hash(bytes)))
        return .success((verdict, receipt))
    }
}
