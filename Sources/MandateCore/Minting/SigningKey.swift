import MandateCrypto

/// A private key for minting delegations and proofs (the CLI, the load generator, benchmarks).
/// Stored as a private JWK (RFC 7517, RFC 8037) in a file of mode 0600.
public enum SigningKey: Sendable {
    case ed25519(seed: [UInt8], publicKey: [UInt8])
    case p256(privateKey: [UInt8], publicKey: P256PublicKey)

    /// RS256 is only verified (an OAuth issuer's), never minted: callers refuse it first.
    public static func generate(_ alg: JWSAlgorithm) -> SigningKey {
        switch alg {
        case .rs256: preconditionFailure("RS256 keys are not made here")
        case .edDSA:
            let (seed, pk) = Ed25519.generate()
            return .ed25519(seed: seed, publicKey: pk)
        case .es256:
            let (d, q) = P256.generate()
            return .p256(privateKey: d, publicKey: P256PublicKey(x: q[1..<33], y: q[33..<65])!)
        }
    }

    public var algorithm: JWSAlgorithm {
        switch self {
        case .ed25519: .edDSA
        case .p256: .es256
        }
    }

    public var verificationKey: VerificationKey {
        switch self {
        case .ed25519(_, let pk): .ed25519(pk)
        case .p256(_, let pk): .p256(pk)
        }
    }

    public var did: String {
        switch self {
        case .ed25519(_, let pk): DID.key(ed25519: pk)
        case .p256(_, let pk): DID.key(p256: pk.uncompressed)
        }
    }

    /// The verification method id: `did:key:X#X`.
    public var keyID: String { did + "#" + did.dropFirst("did:key:".count) }

    public var thumbprint: String { verificationKey.thumbprint }

    public func sign(_ input: some Collection<UInt8>) -> [UInt8] {
        switch self {
        case .ed25519(let seed, _): Ed25519.sign(message: input, seed: seed)
        case .p256(let d, _): P256.sign(message: input, privateKey: d)!
        }
    }

    public var publicJWK: JSONObject {
        switch self {
        case .ed25519(_, let pk):
            JSONObject(members: [("kty", .string("OKP")), ("crv", .string("Ed25519")), ("x", .string(Base64URL.encode(pk)))])
        case .p256(_, let pk):
            JSONObject(members: [("kty", .string("EC")), ("crv", .string("P-256")),
                                 ("x", .string(Base64URL.encode(pk.x))), ("y", .string(Base64URL.encode(pk.y)))])
        }
    }

    public var privateJWK: JSONObject {
        let d: [UInt8]
        switch self {
        case .ed25519(let seed, _): d = seed
        case .p256(let priv, _): d = priv
        }
        return JSONObject(members: publicJWK.members + [("d", .string(Base64URL.encode(d)))])
    }

    /// Reads a private JWK.
    public init(jwk: JSONObject) throws(Reason) {
        guard let dText = jwk["d"]?.string, let d = Base64URL.decode(dText.utf8), d.count == 32 else {
            throw Reason("not a private key: d must be 32 bytes of base64url")
        }
        switch (jwk["kty"]?.string, jwk["crv"]?.string) {
        case ("OKP", "Ed25519"):
            let pk = Ed25519.publicKey(seed: d)
            guard jwk["x"]?.string == Base64URL.encode(pk) else { throw Reason("x does not match d") }
            self = .ed25519(seed: d, publicKey: pk)
        case ("EC", "P-256"):
            guard let q = P256.publicKey(privateKey: d), let pk = P256PublicKey(x: q[1..<33], y: q[33..<65]),
                  jwk["x"]?.string == Base64URL.encode(pk.x), jwk["y"]?.string == Base64URL.encode(pk.y) else {
                throw Reason("x and y do not match d")
            }
            self = .p256(privateKey: d, publicKey: pk)
        default:
            throw Reason("unsupported key: use OKP/Ed25519 or EC/P-256")
        }
    }

    /// A compact JWS over `header` and `claims` (RFC 7515 §7.1); `alg` is set from the key.
    public func compactJWS(header: [(String, JSONValue)], claims: JSONObject) -> String {
        let h = JSONObject(members: [("alg", .string(algorithm.rawValue))] + header)
        var out: [UInt8] = []
        Base64URL.encode(h.serialized(), into: &out)
        out.append(UInt8(ascii: "."))
        Base64URL.encode(claims.serialized(), into: &out)
        let sig = sign(out)
        out.append(UInt8(ascii: "."))
        Base64URL.encode(sig, into: &out)
        return String(decoding: out, as: UTF8.self)
    }
}

/// Mints delegation tokens and DPoP proofs in the format of docs/credentials.md.
public enum Mint {
    /// `jkt` is the delegate's proof key thumbprint; with `certificate` (an x5t#S256, RFC 8705)
    /// the delegation is bound to that client certificate instead.
    /// `issuer`/`kid`: a DID whose verification method holds `key` (did:web, an organization),
    /// by default the key's own did:key. `principal`: the person an organization's root speaks for.
    public static func delegation(key: SigningKey, to subject: String, jkt: String, certificate: String? = nil, scope: String,
                                  issuedAt: Int64, ttl: Int64, parent: String?, audience: String?, maxDepth: Int?,
                                  jti: String, issuer: String? = nil, kid: String? = nil, principal: String? = nil) -> String {
        let cnf = certificate.map { ("x5t#S256", JSONValue.string($0)) } ?? ("jkt", .string(jkt))
        var claims: [(String, JSONValue)] = [
            ("iss", .string(issuer ?? key.did)), ("sub", .string(subject)),
            ("cnf", .object(JSONObject(members: [cnf]))),
            ("scope", .string(scope)), ("iat", .integer(issuedAt)), ("exp", .integer(issuedAt + ttl)), ("jti", .string(jti)),
        ]
        if let audience { claims.append(("aud", .string(audience))) }
        if let parent { claims.append(("prf", .string(Base64URL.encode(SHA256.hash(Array(parent.utf8)))))) }
        if let maxDepth { claims.append(("max_depth", .integer(Int64(maxDepth)))) }
        if let principal { claims.append(("principal", .object(JSONObject(members: [("sub", .string(principal))])))) }
        return key.compactJWS(header: [("typ", .string(DelegationToken.mediaType)), ("kid", .string(kid ?? key.keyID))],
                              claims: JSONObject(members: claims))
    }

    /// RFC 9449 §4.2. `htu` without query and fragment.
    public static func proof(key: SigningKey, method: String, htu: String, accessToken: String, issuedAt: Int64,
                             jti: String) -> String {
        let claims = JSONObject(members: [
            ("jti", .string(jti)), ("htm", .string(method)), ("htu", .string(htu)), ("iat", .integer(issuedAt)),
            ("ath", .string(Base64URL.encode(SHA256.hash(Array(accessToken.utf8))))),
        ])
        return key.compactJWS(header: [("typ", .string(DPoPProof.mediaType)), ("jwk", .object(key.publicJWK))], claims: claims)
    }

    public static func newID() -> String { Base64URL.encode(Random.bytes(16)) }
}
