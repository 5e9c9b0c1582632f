import CMandateShim

/// A P-256 public key (ES256, RFC 7518 §3.4), parsed and curve-checked once, then reused.
public final class P256PublicKey: @unchecked Sendable {
    // EVP_PKEY is reference counted and safe for concurrent verification.
    @usableFromInline let key: OpaquePointer
    /// 65-byte uncompressed SEC1 point.
    public let uncompressed: [UInt8]

    /// `x` and `y` are the 32-byte affine coordinates; nil when the point is not on the curve.
    public init?(x: some Collection<UInt8>, y: some Collection<UInt8>) {
        guard x.count == 32, y.count == 32 else { return nil }
        let point = [0x04] + Array(x) + Array(y)
        guard let key = mandate_p256_key_new(point) else { return nil }
        self.key = key
        self.uncompressed = point
    }

    /// 33-byte compressed SEC1 point (as did:key carries it).
    public convenience init?(compressed: [UInt8]) {
        guard compressed.count == 33 else { return nil }
        var out = [UInt8](repeating: 0, count: 65)
        guard mandate_p256_decompress(compressed, &out) == 1 else { return nil }
        self.init(x: out[1..<33], y: out[33..<65])
    }

    deinit { mandate_p256_key_free(key) }

    public var x: ArraySlice<UInt8> { uncompressed[1..<33] }
    public var y: ArraySlice<UInt8> { uncompressed[33..<65] }

    /// Raw r‖s only (RFC 7518 §3.4); zero or out-of-range scalars are refused.
    @inlinable
    public func verify(signature: some Collection<UInt8>, message: some Collection<UInt8>) -> Bool {
        withBytes(signature) { sig in
            withBytes(message) { msg in
                guard sig.count == 64 else { return false }
                return mandate_p256_verify(key, msg.baseAddress, msg.count,
                                           sig.baseAddress!) == 1
            }
        }
    }
}

public enum P256 {
    /// Returns (32-byte private scalar, 65-byte uncompressed public point).
    public static func generate() -> (privateKey: [UInt8], publicKey: [UInt8]) {
        var d = [UInt8](repeating: 0, count: 32)
        var q = [UInt8](repeating: 0, count: 65)
        precondition(mandate_p256_generate(&d, &q) == 1, "P-256 key generation failed")
        return (d, q)
    }

    public static func publicKey(privateKey: [UInt8]) -> [UInt8]? {
        guard privateKey.count == 32 else { return nil }
        var q = [UInt8](repeating: 0, count: 65)
        return mandate_p256_public_from_private(privateKey, &q) == 1 ? q : nil
    }

    public static func sign(message: some Collection<UInt8>, privateKey: [UInt8]) -> [UInt8]? {
        guard privateKey.count == 32 else { return nil }
        var sig = [UInt8](repeating: 0, count: 64)
        let ok = withBytes(message) { msg in
            mandate_p256_sign(privateKey, msg.baseAddress, msg.count, &sig)
        }
        return ok == 1 ? sig : nil
    }
}

/// An RSA public key for RS256 (RFC 7518 §3.3, PKCS #1 v1.5 with SHA-256): accepted only for
/// OAuth authorization servers' JWKS, 2048 to 8192 bits.
public final class RSAPublicKey: @unchecked Sendable {  // EVP_PKEY: safe for concurrent verification
    let key: OpaquePointer
    /// Big-endian modulus and exponent, as the JWK had them (for the thumbprint).
    public let n: [UInt8]
    public let e: [UInt8]

    public init?(n: [UInt8], e: [UInt8]) {
        guard let key = mandate_rsa_key_new(n, n.count, e, e.count) else { return nil }
        self.key = key; self.n = n; self.e = e
    }

    deinit { mandate_rsa_key_free(key) }

    public func verify(signature: some Collection<UInt8>, message: some Collection<UInt8>) -> Bool {
        withBytes(message) { m in withBytes(signature) { s in
            mandate_rsa_verify_sha256(key, m.baseAddress, m.count, s.baseAddress, s.count) == 1
        } }
    }
}
