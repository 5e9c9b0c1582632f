import MandateCrypto
#if canImport(Glibc)
import Glibc
#endif

/// A DPoP proof JWT (RFC 9449 §4.2), checked rule by rule (§4.3).
public struct DPoPProof: Sendable {
    public let jws: CompactJWS
    public let key: VerificationKey
    public let thumbprint: String
    public let jti: String
    public let htm: String
    public let htu: String
    public let iat: Int64
    public let ath: String?

    public static let mediaType = "dpop+jwt"

    /// Checks 1–6 of §4.3 that need only the proof itself. An agent's proofs share one header
    /// (typ, alg, jwk), so `headers` remembers checked headers and their keys by the exact segment.
    public static func parse(_ raw: ArraySlice<UInt8>, limits: CompactJWS.Limits,
                             headers: ProofHeaderCache? = nil) -> Result<DPoPProof, Reason> {
        let segments: CompactJWS.Segments
        switch CompactJWS.split(raw, limits: limits) {  // §4.3 (2): a well-formed JWS
        case .success(let s): segments = s
        case .failure(let r): return .failure(Reason(r.description))
        }
        let checked: ProofHeader
        if let hit = headers?.lookup(segments.header) {
            checked = hit
        } else {
            switch ProofHeader.check(segments.header) {
            case .success(let h): checked = h
            case .failure(let r): return .failure(r)
            }
            headers?.store(segments.header, checked)
        }
        let jws: CompactJWS
        switch CompactJWS.parse(segments, header: .success((checked.header, checked.key.algorithm))) {
        case .success(let j): jws = j
        case .failure(let r): return .failure(Reason(r.description))
        }
        let c = jws.claims
        guard let jti = c["jti"]?.string, !jti.isEmpty, jti.utf8.count <= 256 else {
            return .failure(Reason("jti is required (at most 256 bytes)"))
        }
        guard let htm = c["htm"]?.string else { return .failure(Reason("htm is required")) }
        guard let htu = c["htu"]?.string else { return .failure(Reason("htu is required")) }
        guard case .present(let iat) = numericDate(c, "iat") else {
            return .failure(Reason("iat is required as a NumericDate (integer seconds)"))
        }
        var ath: String? = nil
        if let a = c["ath"] {
            guard let s = a.string else { return .failure(Reason("ath must be a string")) }
            ath = s
        }
        return .success(DPoPProof(jws: jws, key: checked.key, thumbprint: checked.thumbprint, jti: jti, htm: htm,
                                  htu: htu, iat: iat, ath: ath))
    }

    /// §4.3 (6): the signature verifies with the jwk.
    public func verifySignature() -> Bool {
        if case .success = jws.verify(with: key) { return true }
        return false
    }
}

/// The rules of RFC 9449 §4.3 that relate a proof to the request and the token.
public enum DPoPRules {
    /// §4.3 (8): htm matches the method.
    public static func methodMatches(_ p: DPoPProof, method: String) -> Reason? {
        p.htm == method ? nil : Reason("htm does not match the request method")
    }

    /// §4.3 (9): htu matches the public URI, without query and fragment, after normalisation.
    public static func uriMatches(_ p: DPoPProof, publicURI: String) -> Reason? {
        if sameBytes(p.htu, publicURI) { return nil }  // already normal: the usual case
        guard let n = HTU.normalize(p.htu) else { return Reason("htu is not an absolute http(s) URI") }
        return n == publicURI ? nil : Reason("htu does not match the request URI")
    }

    /// §4.3 (11), §11.1: iat within the acceptance window.
    public static func freshness(_ p: DPoPProof, now: Int64, maxAge: Int64, futureSkew: Int64) -> Reason? {
        if p.iat > now + futureSkew { return Reason("iat is in the future") }
        if p.iat < now - maxAge { return Reason("proof is too old (iat)") }
        return nil
    }

    /// §4.3 (12): ath is the hash of the access token.
    public static func tokenHashMatches(_ p: DPoPProof, tokenHash: [UInt8]) -> Reason? {
        guard let ath = p.ath else { return Reason("ath is required with an access token") }
        guard let decoded = Base64URL.decode(ath.utf8), constantTimeEqual(decoded, tokenHash) else {
            return Reason("ath does not match the access token")
        }
        return nil
    }

    /// §4.3 (12), §6.1: the proof key is the one the token is bound to.
    public static func keyIsBound(_ p: DPoPProof, jkt: String) -> Reason? {
        constantTimeEqual(p.thumbprint.utf8, jkt.utf8) ? nil : Reason("proof key does not match the token's cnf.jkt")
    }
}

/// A proof header that passed §4.3 (4) and (7): typ, an allowed alg matching the jwk, a public jwk.
public struct ProofHeader: Sendable {
    public let header: JSONObject
    public let key: VerificationKey
    public let thumbprint: String

    static func check(_ segment: ArraySlice<UInt8>) -> Result<ProofHeader, Reason> {
        let header: JSONObject, alg: JWSAlgorithm
        switch CompactJWS.header(segment) {  // §4.3 (4): an allowed, asymmetric alg
        case .success(let (h, a)): (header, alg) = (h, a)
        case .failure(let r): return .failure(Reason(r.description))
        }
        guard header["typ"]?.string == DPoPProof.mediaType else { return .failure(Reason("typ must be dpop+jwt")) }
        guard let jwk = header["jwk"]?.object else { return .failure(Reason("jwk header is required")) }
        let key: VerificationKey
        switch JWK.publicKey(jwk) {  // §4.3 (7): no private key in jwk
        case .success(let k): key = k
        case .failure(.privateMembers): return .failure(Reason("jwk must not contain private key members"))
        case .failure(let e): return .failure(Reason("jwk is not a usable public key (\(e.description))"))
        }
        guard key.algorithm == alg else { return .failure(Reason("alg does not match the jwk key type")) }
        return .success(ProofHeader(header: header, key: key, thumbprint: key.thumbprint))
    }
}

/// Checked proof headers by their exact base64url segment. Bounded; about 600 bytes per entry.
public final class ProofHeaderCache: Sendable {
    /// The segment's bytes, hashed a word at a time (ArraySlice's own hash takes a byte at a time).
    struct Segment: Hashable, @unchecked Sendable {
        let bytes: ArraySlice<UInt8>
        func hash(into h: inout Hasher) { bytes.withUnsafeBytes { h.combine(bytes: $0) } }
        static func == (a: Segment, b: Segment) -> Bool {
            a.bytes.count == b.bytes.count && a.bytes.withUnsafeBytes { x in
                b.bytes.withUnsafeBytes { y in memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0 }
            }
        }
    }

    private let entries = Locked<[Segment: ProofHeader]>([:])
    private let capacity: Int

    public init(capacity: Int = 10_000) { self.capacity = capacity }

    func lookup(_ segment: ArraySlice<UInt8>) -> ProofHeader? {
        if segment.isEmpty { return nil }
        return entries.withLock { $0[Segment(bytes: segment)] }
    }

    func store(_ segment: ArraySlice<UInt8>, _ header: ProofHeader) {
        if segment.isEmpty { return }
        let key = Segment(bytes: Array(segment)[...])  // its own storage, not the request's
        let limit = capacity
        entries.withLock {
            if $0.count >= limit { $0.removeAll(keepingCapacity: true) }
            $0[key] = header
        }
    }
}
