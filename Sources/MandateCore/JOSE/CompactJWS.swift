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

    /// Parses `token` (the whole compact string, as bytes).
    public static func parse(_ token: ArraySlice<UInt8>, limits: Limits = Limits()) -> Result<CompactJWS, JOSERefusal> {
        // RFC 8725 §3.11 and our caps: size before any decoding.
        guard token.count <= limits.token else { return .failure(.tooLarge("token")) }
        var dots: [Int] = []
        for i in token.indices where token[i] == UInt8(ascii: ".") {
            dots.append(i)
            if dots.count > 2 { return .failure(.notCompactJWS) }
        }
        guard dots.count == 2 else { return .failure(.notCompactJWS) }
        let h = token[token.startIndex..<dots[0]]
        let p = token[(dots[0] + 1)..<dots[1]]
        let s = token[(dots[1] + 1)...]
        guard h.count <= limits.header * 4 / 3 + 4 else { return .failure(.tooLarge("header")) }
        guard let headerBytes = Base64URL.decode(h), let payloadBytes = Base64URL.decode(p),
              let signature = Base64URL.decode(s) else { return .failure(.badBase64URL) }
        let header: JSONObject
        switch StrictJSON.parseObject(headerBytes) {
        case .success(let o): header = o
        case .failure(let e): return .failure(.badJSON("header", e))
        }
        let claims: JSONObject
        switch StrictJSON.parseObject(payloadBytes) {
        case .success(let o): claims = o
        case .failure(let e): return .failure(.badJSON("claims", e))
        }
        // RFC 7515 §4.1.11: we implement no extension, so any `crit` is unknown.
        if header["crit"] != nil { return .failure(.unknownCritical) }
        guard let algName = header["alg"]?.string else { return .failure(.missingHeader("alg")) }
        guard let alg = JWSAlgorithm(rawValue: algName) else { return .failure(.algorithmNotAllowed(algName)) }
        // RFC 7518 §3.4 / RFC 8032: both algorithms have 64-byte signatures (ECDSA as raw r‖s).
        guard signature.count == 64 else { return .failure(.badSignatureEncoding) }
        return .success(CompactJWS(header: header, claims: claims, signingInput: token[token.startIndex..<dots[1]],
                                   signature: signature, algorithm: alg))
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
