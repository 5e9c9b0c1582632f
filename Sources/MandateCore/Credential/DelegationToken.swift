/// One link of a delegation chain: a JWS with `typ` `delegation+jwt` (docs/credentials.md).
public struct DelegationToken: Sendable {
    public let raw: ArraySlice<UInt8>
    public let jws: CompactJWS
    public let issuer: String
    public let subject: String
    public let keyID: String
    /// `cnf` holds exactly one of these. `jkt` (RFC 7800 §3.1, RFC 7638): the thumbprint of the
    /// delegate's proof key. `x5t#S256` (RFC 8705 §3.1): the SHA-256 of the client certificate
    /// the leaf is bound to; possession is then proven by the TLS handshake.
    public let confirmedKeyThumbprint: String?
    public let certificateThumbprint: String?
    public let scopes: [String]
    public let issuedAt: Int64
    public let expiresAt: Int64
    public let notBefore: Int64?
    public let id: String
    public let audiences: [String]?
    /// base64url(SHA-256(parent token)); absent only on the root.
    public let parentHash: String?
    public let maxDepth: Int?
    /// `principal.sub`: the person an organisation's root delegation is for (docs/credentials.md).
    public let principalSubject: String?

    public static let mediaType = "delegation+jwt"

    public static func parse(_ raw: ArraySlice<UInt8>, limits: CompactJWS.Limits) -> Result<DelegationToken, Reason> {
        let jws: CompactJWS
        switch CompactJWS.parse(raw, limits: limits) {
        case .success(let j): jws = j
        case .failure(let r): return .failure(Reason(r.description))
        }
        let h = jws.header, c = jws.claims
        guard h["typ"]?.string == mediaType else { return .failure(Reason("typ must be \(mediaType)")) }
        guard let kid = h["kid"]?.string else { return .failure(Reason("kid is required")) }
        // RFC 8725 §3.10: the key comes from the issuer's DID, never from the token.
        for p in ["jwk", "jku", "x5u", "x5c"] where h[p] != nil {
            return .failure(Reason("header parameter '\(p)' is not allowed in a delegation"))
        }
        guard let iss = c["iss"]?.string, DID.isWellFormed(iss) else { return .failure(Reason("iss must be a DID")) }
        guard let sub = c["sub"]?.string, DID.isWellFormed(sub) else { return .failure(Reason("sub must be a DID")) }
        guard let cnf = c["cnf"]?.object else { return .failure(Reason("cnf is required (jkt or x5t#S256)")) }
        let jkt = cnf["jkt"], x5t = cnf["x5t#S256"]
        guard (jkt == nil) != (x5t == nil) else {
            return .failure(Reason("cnf must hold exactly one of jkt and x5t#S256"))
        }
        func sha256Text(_ v: JSONValue?) -> String? {
            guard let t = v?.string, t.utf8.count == 43, Base64URL.decode(t.utf8)?.count == 32 else { return nil }
            return t
        }
        if jkt != nil && sha256Text(jkt) == nil { return .failure(Reason("cnf.jkt must be a SHA-256 JWK thumbprint")) }
        if x5t != nil && sha256Text(x5t) == nil {
            return .failure(Reason("cnf.x5t#S256 must be a base64url SHA-256 certificate thumbprint"))
        }
        guard let scope = c["scope"]?.string else { return .failure(Reason("scope is required")) }
        guard let jti = c["jti"]?.string, !jti.isEmpty else { return .failure(Reason("jti is required")) }
        let iat: Int64, exp: Int64, nbf: Int64?
        switch (numericDate(c, "iat"), numericDate(c, "exp"), numericDate(c, "nbf")) {
        case (.present(let i), .present(let e), let n):
            iat = i; exp = e
            switch n {
            case .absent: nbf = nil
            case .present(let v): nbf = v
            case .invalid: return .failure(Reason("nbf must be a NumericDate (integer seconds)"))
            }
        case (.absent, _, _), (_, .absent, _): return .failure(Reason("iat and exp are required"))
        default: return .failure(Reason("iat and exp must be NumericDates (integer seconds)"))
        }
        var aud: [String]? = nil
        switch c["aud"] {
        case nil: break
        case .string(let s)?: aud = [s]
        case .array(let a)?:
            let strings = a.compactMap(\.string)
            guard strings.count == a.count, !strings.isEmpty else { return .failure(Reason("aud must be a string or an array of strings")) }
            aud = strings
        default: return .failure(Reason("aud must be a string or an array of strings"))
        }
        var prf: String? = nil
        if let p = c["prf"] {
            guard let s = p.string else { return .failure(Reason("prf must be a string")) }
            prf = s
        }
        var depth: Int? = nil
        if let d = c["max_depth"] {
            guard let v = d.integer, v >= 0, v <= 64 else { return .failure(Reason("max_depth must be a non-negative integer")) }
            depth = Int(v)
        }
        var person: String? = nil
        if let p = c["principal"] {
            guard let sub = p.object?["sub"]?.string, PrincipalClaim.isIdentifier(sub) else {
                return .failure(Reason("principal must be an object whose sub is an identifier like alice@partner.example"))
            }
            person = sub
        }
        guard ScopeToken.isScope(scope) else { return .failure(Reason("scope has a character outside RFC 6749 scope-token")) }
        let scopes = scope.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        return .success(DelegationToken(raw: raw, jws: jws, issuer: iss, subject: sub, keyID: kid,
                                        confirmedKeyThumbprint: sha256Text(jkt), certificateThumbprint: sha256Text(x5t), scopes: scopes, issuedAt: iat, expiresAt: exp,
                                        notBefore: nbf, id: jti, audiences: aud, parentHash: prf, maxDepth: depth,
                                        principalSubject: person))
    }
}

/// The person an organisation speaks for: it reaches upstream headers and logs, so only
/// `[A-Za-z0-9._%+@:-]`, 1 to 256 bytes, and not a DID (that would pass for an enrolled principal).
public enum PrincipalClaim {
    public static func isIdentifier(_ s: some StringProtocol) -> Bool {
        let u = s.utf8
        guard (1...256).contains(u.count), !s.hasPrefix("did:") else { return false }
        return u.allSatisfy { ($0 >= 0x30 && $0 <= 0x3a) || ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x61 && $0 <= 0x7a)
            || $0 == 0x2e || $0 == 0x5f || $0 == 0x25 || $0 == 0x2b || $0 == 0x40 || $0 == 0x2d }
    }
}

/// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), separated by spaces. Nothing a
/// header or a Unicode comparison could read otherwise (CR LF, U+212A KELVIN SIGN for K).
public enum ScopeToken {
    static func isTokenByte(_ c: UInt8) -> Bool { c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e) }

    /// A scope claim: tokens and spaces.
    public static func isScope(_ s: String) -> Bool { s.utf8.allSatisfy { $0 == 0x20 || isTokenByte($0) } }

    public static func isToken(_ s: String) -> Bool { !s.isEmpty && s.utf8.allSatisfy(isTokenByte) }
}

enum NumericDateClaim { case absent, present(Int64), invalid }

/// RFC 7519 §2: a JSON number of seconds. Strings, fractions, negatives and dates after the year
/// 9999 are refused, so that no arithmetic on a date can overflow.
func numericDate(_ claims: JSONObject, _ name: String) -> NumericDateClaim {
    guard let v = claims[name] else { return .absent }
    guard case .integer(let i) = v, i >= 0, i <= maxNumericDate else { return .invalid }
    return .present(i)
}

let maxNumericDate: Int64 = 253_402_300_799  // 9999-12-31T23:59:59Z

/// A human-readable reason a check failed; the caller decides the Denial code.
public struct Reason: Error, Equatable, Sendable {
    public var text: String
    /// The failure may pass on its own (a fetch that timed out, a server error): 503, not 401.
    public var temporary: Bool
    public init(_ text: String, temporary: Bool = false) { self.text = text; self.temporary = temporary }
}
