import MandateCrypto

/// A principal signing in to the approval service (its web page, `mandate approvals list`): a
/// short-lived compact JWS signed with the principal's own key, `typ` `approval-login+jwt`, spent
/// once (docs/approvals.md, "Signing in").
public enum ApprovalLogin {
    public static let mediaType = "approval-login+jwt"
    /// exp - iat may not exceed this: a sign-in link is for now, not for later.
    public static let maxLifetime: Int64 = 600

    /// What a verified token says.
    public struct Verified: Sendable, Equatable {
        public var principal: String
        public var jti: String
        public var expiresAt: Int64
    }

    /// The token `mandate approvals login|list` makes. `audience`: the service's public_url.
    public static func sign(key: SigningKey, principal: String, kid: String?, audience: String, issuedAt: Int64,
                            ttl: Int64 = 300, jti: String = Base64URL.encode(Random.bytes(16))) -> String {
        var header: [(String, JSONValue)] = [("typ", .string(mediaType))]
        if let kid { header.append(("kid", .string(kid))) }
        return key.compactJWS(header: header, claims: JSONObject(members: [
            ("iss", .string(principal)), ("aud", .string(audience)), ("iat", .integer(issuedAt)),
            ("exp", .integer(issuedAt + min(ttl, maxLifetime))), ("jti", .string(jti)),
        ]))
    }

    /// Checks `token` for `audience`: signed by the key of the principal `iss` names, as
    /// `principals` enrol it (never a key from the token), its algorithm pinned by that key
    /// (RFC 8725 §3.1). The caller spends the jti.
    public static func verify(_ token: some Collection<UInt8>, audience: String, principals: any ApprovalPrincipals,
                              now: Int64, skew: Int64 = 30) -> Result<Verified, Reason> {
        let jws: CompactJWS
        switch CompactJWS.parse(Array(token)[...], limits: CompactJWS.Limits(token: 8192, header: 1024)) {
        case .success(let j): jws = j
        case .failure(let e): return .failure(Reason("the sign-in token is not a valid JWS: \(e.description)"))
        }
        // RFC 8725 §3.11: explicit typing, so no other token of the principal's signs them in.
        guard jws.header["typ"]?.string == mediaType else { return .failure(Reason("the sign-in token's typ must be \(mediaType)")) }
        for name in ["jwk", "jku", "x5u", "x5c"] where jws.header[name] != nil {
            return .failure(Reason("the sign-in token's header may not carry \(name): the key is the principal's"))
        }
        let c = jws.claims
        guard let iss = c["iss"]?.string else { return .failure(Reason("the sign-in token needs iss, the principal's DID")) }
        guard let k = principals.key(for: iss) else { return .failure(Reason("\(iss) is not a principal of this approval service")) }
        if let kid = jws.header["kid"] {
            guard let s = kid.string, s.hasPrefix(iss + "#") else { return .failure(Reason("the sign-in token's kid is not a key of \(iss)")) }
        }
        if case .failure(let e) = jws.verify(with: k.key) {
            return .failure(Reason("the sign-in token is not signed by \(iss)'s key (\(e.description))"))
        }
        guard let aud = c["aud"]?.string, sameBytes(aud, audience) else {
            return .failure(Reason("the sign-in token is for another approval service (aud must be \(audience))"))
        }
        // RFC 7519 §2 NumericDates in 0...9999-12-31, so that no arithmetic on them can overflow.
        guard case .present(let iat) = numericDate(c, "iat"), case .present(let exp) = numericDate(c, "exp") else {
            return .failure(Reason("the sign-in token needs integer iat and exp (NumericDates)"))
        }
        guard iat <= now + skew else { return .failure(Reason("the sign-in token is issued in the future")) }
        guard exp > now else { return .failure(Reason("the sign-in token has expired; make a new one")) }
        guard exp >= iat, exp - iat <= maxLifetime else {
            return .failure(Reason("the sign-in token may live at most \(maxLifetime) seconds"))
        }
        guard let jti = c["jti"]?.string, !jti.isEmpty, jti.utf8.count <= 128 else {
            return .failure(Reason("the sign-in token needs a jti of 1 to 128 characters"))
        }
        return .success(Verified(principal: iss, jti: jti, expiresAt: exp))
    }
}
