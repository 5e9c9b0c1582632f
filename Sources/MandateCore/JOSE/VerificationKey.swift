import MandateCrypto

/// The JWS algorithms Mandate accepts (RFC 7518 §3.4, RFC 8037 §3.1; RS256, §3.3, only from an
/// OAuth issuer's JWKS). Nothing symmetric, no `none`.
public enum JWSAlgorithm: String, Sendable {
    case edDSA = "EdDSA"
    case es256 = "ES256"
    case rs256 = "RS256"
}

/// A public key pinned to exactly one algorithm (RFC 8725 §3.1): OKP/Ed25519 ⇔ EdDSA, EC/P-256 ⇔ ES256.
public enum VerificationKey: Sendable {
    case ed25519([UInt8])
    case p256(P256PublicKey)
    case rsa(RSAPublicKey)

    public var algorithm: JWSAlgorithm {
        switch self {
        case .ed25519: .edDSA
        case .p256: .es256
        case .rsa: .rs256
        }
    }

    public func verify(signature: some Collection<UInt8>, input: some Collection<UInt8>) -> Bool {
        switch self {
        case .ed25519(let pk): Ed25519.verify(signature: signature, message: input, publicKey: pk)
        case .p256(let key): key.verify(signature: signature, message: input)
        case .rsa(let key): key.verify(signature: signature, message: input)
        }
    }

    /// RFC 7638 §3: SHA-256 over the required members in lexicographic order, no whitespace.
    public var thumbprint: String {
        var json: [UInt8] = []
        json.reserveCapacity(160)
        switch self {
        case .ed25519(let pk):
            json += #"{"crv":"Ed25519","kty":"OKP","x":""#.utf8
            Base64URL.encode(pk, into: &json)
            json += #""}"#.utf8
        case .p256(let key):
            json += #"{"crv":"P-256","kty":"EC","x":""#.utf8
            Base64URL.encode(key.x, into: &json)
            json += #"","y":""#.utf8
            Base64URL.encode(key.y, into: &json)
            json += #""}"#.utf8
        case .rsa(let key):
            json += #"{"e":""#.utf8
            Base64URL.encode(key.e, into: &json)
            json += #"","kty":"RSA","n":""#.utf8
            Base64URL.encode(key.n, into: &json)
            json += #""}"#.utf8
        }
        return Base64URL.encode(SHA256.hash(json))
    }
}

/// Why a JWK was refused.
public enum JWKError: Error, Equatable, Sendable {
    case unsupportedKeyType
    case privateMembers
    case malformed(String)
    case algorithmMismatch
    case notOnCurve

    public var description: String {
        switch self {
        case .unsupportedKeyType: "key type is not OKP/Ed25519 or EC/P-256"
        case .privateMembers: "the JWK has private key members"
        case .malformed(let why): why
        case .algorithmMismatch: "the JWK's alg does not match its key type"
        case .notOnCurve: "the point is not on the curve"
        }
    }
}

public enum JWK {
    /// Members that only a private (or symmetric) JWK has (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
    static let privateMembers: Set<String> = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]

    /// A public OKP/Ed25519 or EC/P-256 JWK (and RSA, 2048 bits or more, where `allowRSA`: an
    /// OAuth issuer's JWKS). Any private member refuses the whole key.
    public static func publicKey(_ jwk: JSONObject, allowRSA: Bool = false) -> Result<VerificationKey, JWKError> {
        if jwk.names.contains(where: privateMembers.contains) { return .failure(.privateMembers) }
        guard let kty = jwk["kty"]?.string else { return .failure(.malformed("kty is required")) }
        if kty == "RSA" && allowRSA {
            guard let n = jwk["n"]?.string.flatMap({ Base64URL.decode($0.utf8) }),
                  let e = jwk["e"]?.string.flatMap({ Base64URL.decode($0.utf8) }) else {
                return .failure(.malformed("n and e must be base64url"))
            }
            guard let key = RSAPublicKey(n: n, e: e) else { return .failure(.malformed("RSA key below 2048 or above 8192 bits")) }
            if let a = jwk["alg"], a.string != JWSAlgorithm.rs256.rawValue { return .failure(.algorithmMismatch) }
            return .success(.rsa(key))
        }
        guard kty == "OKP" || kty == "EC" else { return .failure(.unsupportedKeyType) }
        guard let crv = jwk["crv"]?.string else { return .failure(.malformed("crv is required")) }
        guard let x = jwk["x"]?.string else { return .failure(.malformed("x is required")) }
        let y = jwk["y"]?.string
        let key: VerificationKey
        switch (kty, crv) {
        case ("OKP", "Ed25519"):
            if y != nil { return .failure(.malformed("OKP keys have no y")) }
            guard let xb = Base64URL.decode(x.utf8), xb.count == 32 else {
                return .failure(.malformed("x must be 32 bytes of base64url"))
            }
            key = .ed25519(xb)
        case ("EC", "P-256"):
            guard let xb = Base64URL.decode(x.utf8), xb.count == 32,
                  let yb = y.flatMap({ Base64URL.decode($0.utf8) }), yb.count == 32 else {
                return .failure(.malformed("x and y must be 32 bytes of base64url each"))
            }
            guard let p = P256PublicKey(x: xb, y: yb) else { return .failure(.notOnCurve) }
            key = .p256(p)
        default:
            return .failure(.unsupportedKeyType)
        }
        if let a = jwk["alg"], a.string != key.algorithm.rawValue { return .failure(.algorithmMismatch) }
        return .success(key)
    }
}
