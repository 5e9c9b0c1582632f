#if canImport(Glibc)
import Glibc
#endif
/// A JWS in compact serialization (RFC 7515 §7.1) whose header and payload are JSON objects,
/// parsed under the hygiene of RFC 8725. The signature is not checked here: the caller picks the
/// key, never the token.
public struct CompactJWS: Sendable {
    public let header: JSONObject
    public let claims: JSONObject
    /// ASCII(BASE64URL(header) || '.' || BASE64URL(payload)), RFC 7515 §5.2.
    public let signingInput: ArraySlice<UInt8>
    public let signature: [UInt8]
    public let algorithm: JWSAlgorithm

    public struct Limits: Sendable {
        public var token: Int
        public var header: Int
        public init(token: Int = 8192, header: Int = 2048) { self.token = token; self.header = header }
    }

    /// The three segments of a compact JWS, found and size-checked before any decoding.
    public struct Segments: Sendable {
        public var header: ArraySlice<UInt8>
        public var payload: ArraySlice<UInt8>
        public var signature: ArraySlice<UInt8>
        public var signingInput: ArraySlice<UInt8>
    }

    /// RFC 8725 §3.11 and our caps: sizes first; exactly three segments (a JWE has five).
    public static func split(_ token: ArraySlice<UInt8>, limits: Limits) -> Result<Segments, JOSERefusal> {
        guard token.count <= limits.token else { return .failure(.tooLarge("token")) }
        // Exactly two dots (RFC 7515 §7.1), found with memchr.
        let dots: (Int, Int)? = token.withUnsafeBytes { b in
            guard let base = b.baseAddress, let d1 = memchr(base, 0x2E, b.count) else { return nil }
            let i1 = base.distance(to: UnsafeRawPointer(d1))
            guard let d2 = memchr(base + i1 + 1, 0x2E, b.count - i1 - 1) else { return nil }
            let i2 = base.distance(to: UnsafeRawPointer(d2))
            if memchr(base + i2 + 1, 0x2E, b.count - i2 - 1) != nil { return nil }
            return (i1, i2)
        }
        guard let (d1, d2) = dots else { return .failure(.notCompactJWS) }
        let first = token.startIndex + d1, second = token.startIndex + d2
        let h = token[token.startIndex..<first]
        guard h.count <= limits.header * 4 / 3 + 4 else { return .failure(.tooLarge("header")) }
        return .success(Segments(header: h, payload: token[(first + 1)..<second], signature: token[(second + 1)...],
                                 signingInput: token[token.startIndex..<second]))
    }

    /// The protected header: a JSON object with an allowed `alg` and no `crit`.
    public static func header(_ segment: ArraySlice<UInt8>) -> Result<(JSONObject, JWSAlgorithm), JOSERefusal> {
        guard let bytes = Base64URL.decode(segment) else { return .failure(.badBase64URL) }
        let header: JSONObject
        switch StrictJSON.parseObject(bytes) {
        case .success(let o): header = o
        case .failure(let e): return .failure(.badJSON("header", e))
        }
        // RFC 7515 §4.1.11: we implement no extension, so any `crit` is unknown.
        if header["crit"] != nil { return .failure(.unknownCritical) }
        guard let algName = header["alg"]?.string else { return .failure(.missingHeader("alg")) }
        guard let alg = JWSAlgorithm(rawValue: algName) else { return .failure(.algorithmNotAllowed(algName)) }
        return .success((header, alg))
    }

    public static func claims(_ segment: ArraySlice<UInt8>) -> Result<JSONObject, JOSERefusal> {
        guard let bytes = Base64URL.decode(segment) else { return .failure(.badBase64URL) }
        switch StrictJSON.parseObject(bytes) {
        case .success(let o): return .success(o)
        case .failure(let e): return .failure(.badJSON("claims", e))
        }
    }

    /// RFC 7518 §3.4 / RFC 8032: 64-byte signatures (ECDSA as raw r‖s); RS256 (§3.3) the size
    /// of a 2048 to 8192-bit modulus.
    public static func signature(_ segment: ArraySlice<UInt8>, _ alg: JWSAlgorithm = .edDSA) -> Result<[UInt8], JOSERefusal> {
        guard let bytes = Base64URL.decode(segment) else { return .failure(.badBase64URL) }
        let ok = alg == .rs256 ? (256...1024).contains(bytes.count) : bytes.count == 64
        return ok ? .success(bytes) : .failure(.badSignatureEncoding)
    }

    /// Parses `token` (the whole compact string, as bytes).
    public static func parse(_ token: ArraySlice<UInt8>, limits: Limits = Limits()) -> Result<CompactJWS, JOSERefusal> {
        let s: Segments
        switch split(token, limits: limits) {
        case .success(let v): s = v
        case .failure(let r): return .failure(r)
        }
        return parse(s, header: header(s.header))
    }

    /// With the header already parsed (a proof's header repeats request after request).
    static func parse(_ s: Segments, header h: Result<(JSONObject, JWSAlgorithm), JOSERefusal>) -> Result<CompactJWS, JOSERefusal> {
        let alg = (try? h.get())?.1 ?? .edDSA
        switch (h, claims(s.payload), signature(s.signature, alg)) {
        case (.success(let (header, alg)), .success(let c), .success(let sig)):
            return .success(CompactJWS(header: header, claims: c, signingInput: s.signingInput, signature: sig, algorithm: alg))
        case (.failure(let r), _, _), (_, .failure(let r), _), (_, _, .failure(let r)):
            return .failure(r)
        }
    }

    /// Verifies with `key`, whose algorithm must be the one the header names (RFC 8725 §3.1).
    public func verify(with key: VerificationKey) -> Result<Void, JOSERefusal> {
        guard key.algorithm == algorithm else { return .failure(.algorithmKeyMismatch) }
        return key.verify(signature: signature, input: signingInput) ? .success(()) : .failure(.badSignature)
    }
}

/// Why a JOSE object was refused.
public enum JOSERefusal: Error, Equatable, Sendable {
    case tooLarge(String)
    case notCompactJWS
    case badBase64URL
    case badJSON(String, JSONError)
    case unknownCritical
    case missingHeader(String)
    case algorithmNotAllowed(String)
    case algorithmKeyMismatch
    case badSignatureEncoding
    case badSignature

    public var description: String {
        switch self {
        case .tooLarge(let what): "\(what) exceeds the size limit"
        case .notCompactJWS: "not a JWS in compact serialization (exactly three segments)"
        case .badBase64URL: "segment is not canonical unpadded base64url"
        case .badJSON(let part, .duplicateMember(let n)): "\(part) has a duplicate member '\(n)'"
        case .badJSON(let part, .invalidUTF8): "\(part) is not valid UTF-8"
        case .badJSON(let part, .notAnObject): "\(part) is not a JSON object"
        case .badJSON(let part, _): "\(part) is not valid JSON"
        case .unknownCritical: "unsupported critical header parameter (crit)"
        case .missingHeader(let n): "header parameter '\(n)' is missing"
        case .algorithmNotAllowed(let a): "algorithm '\(a)' is not allowed"
        case .algorithmKeyMismatch: "algorithm does not match the key type"
        case .badSignatureEncoding: "signature has the wrong length"
        case .badSignature: "signature does not verify"
        }
    }
}
