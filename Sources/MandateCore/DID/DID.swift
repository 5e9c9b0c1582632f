import MandateCrypto
import Synchronization

/// The DID methods that resolve locally: did:key (Ed25519 0xed, P-256 0x1200) and did:jwk.
public enum DID {
    public enum Refusal: Error, Equatable, Sendable {
        case unsupportedMethod
        case malformed(String)
        case key(JWKError)

        public var description: String {
            switch self {
            case .unsupportedMethod: "only did:key and did:jwk resolve here"
            case .malformed(let why): why
            case .key(let e): e.description
            }
        }
    }

    /// The key a DID names, and its only verification method's id (the `kid` we expect).
    public static func resolve(_ did: String) -> Result<(key: VerificationKey, methodID: String), Refusal> {
        let u = did.utf8
        guard u.count <= 4096 else { return .failure(.malformed("too long")) }
        if did.hasPrefix("did:key:") {
            let mb = did.dropFirst(8)
            guard mb.first == "z", let bytes = Base58.decode(mb.utf8.dropFirst()) else {
                return .failure(.malformed("did:key must be multibase base58btc (z…)"))
            }
            let key: VerificationKey
            if bytes.count == 34, bytes[0] == 0xed, bytes[1] == 0x01 {
                key = .ed25519(Array(bytes[2...]))
            } else if bytes.count == 35, bytes[0] == 0x80, bytes[1] == 0x24 {
                guard let p = P256PublicKey(compressed: Array(bytes[2...])) else { return .failure(.key(.notOnCurve)) }
                key = .p256(p)
            } else {
                return .failure(.malformed("did:key must carry an Ed25519 or compressed P-256 key"))
            }
            return .success((key, did + "#" + mb))
        }
        if did.hasPrefix("did:jwk:") {
            guard let json = Base64URL.decode(u.dropFirst(8)) else {
                return .failure(.malformed("did:jwk must be unpadded base64url"))
            }
            guard case .success(let jwk) = StrictJSON.parseObject(json) else {
                return .failure(.malformed("did:jwk does not hold a JSON object"))
            }
            switch JWK.publicKey(jwk) {
            case .success(let key): return .success((key, did + "#0"))
            case .failure(let e): return .failure(.key(e))
            }
        }
        return .failure(.unsupportedMethod)
    }

    /// W3C DID Core §3.1 syntax: `did:` method-name `:` method-specific-id, at most 2 KB. A DID
    /// goes into upstream headers, so nothing outside this grammar (no CR, LF, comma) passes.
    public static func isWellFormed(_ did: String) -> Bool {
        let u = Array(did.utf8)
        guard u.count <= 2048, u.starts(with: "did:".utf8) else { return false }
        var i = 4
        let methodStart = i
        while i < u.count, (u[i] >= 0x61 && u[i] <= 0x7a) || (u[i] >= 0x30 && u[i] <= 0x39) { i += 1 }
        guard i > methodStart, i < u.count, u[i] == UInt8(ascii: ":") else { return false }
        i += 1
        guard i < u.count, u.last != UInt8(ascii: ":") else { return false }
        while i < u.count {
            let c = u[i]
            let alnum = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39)
            if alnum || c == 0x2e || c == 0x2d || c == 0x5f || c == 0x3a {
                i += 1
            } else if c == 0x25, i + 2 < u.count, PathNormalizer.hexValue(u[i + 1]) != nil,
                      PathNormalizer.hexValue(u[i + 2]) != nil {
                i += 3
            } else {
                return false
            }
        }
        return true
    }

    public static func key(ed25519 publicKey: [UInt8]) -> String {
        "did:key:z" + Base58.encode([0xed, 0x01] + publicKey)
    }

    /// `uncompressed` is the 65-byte SEC1 point.
    public static func key(p256 uncompressed: [UInt8]) -> String {
        let prefix: UInt8 = uncompressed[64] & 1 == 0 ? 0x02 : 0x03
        return "did:key:z" + Base58.encode([0x80, 0x24, prefix] + uncompressed[1..<33])
    }
}

/// Resolved DIDs: did:key and did:jwk here, memoised (P-256 decompression, curve checks and the
/// thumbprints are costly); did:web through its resolver, when one is configured.
/// Memory: about 250 bytes per local entry plus the DID text.
public final class DIDCache: Sendable {
    public enum Lookup: Sendable {
        /// `until`: for a fetched document, when a chain built on it must be walked again.
        case resolved(DIDDocument, until: Int64?)
        case failed(String, temporary: Bool)
        case pending(Readiness)
    }

    private let entries: Mutex<[String: DIDDocument]>
    private let capacity: Int
    public let web: DIDWebResolver?

    public init(capacity: Int = 10_000, web: DIDWebResolver? = nil) {
        self.capacity = capacity
        self.web = web
        entries = Mutex([:])
    }

    /// `missingKid`: the document returned before lacked a needed key (did:web may refetch it).
    public func lookup(_ did: String, missingKid: Bool = false) -> Lookup {
        if did.hasPrefix("did:web:") {
            guard let web else { return .failed("did:web resolution is not enabled (did_web on)", temporary: false) }
            switch web.lookup(did, missingKid: missingKid) {
            case .document(let d, let until): return .resolved(d, until: until)
            case .failed(let why, let temporary): return .failed(why, temporary: temporary)
            case .pending(let r): return .pending(r)
            }
        }
        if let hit = entries.withLock({ $0[did] }) { return .resolved(hit, until: nil) }
        switch DID.resolve(did) {
        case .failure(let e): return .failed(e.description, temporary: false)
        case .success(let v):
            let d = DIDDocument(single: v.key, id: v.methodID)
            entries.withLock {
                if $0.count >= capacity { $0.removeAll(keepingCapacity: true) }
                $0[did] = d
            }
            return .resolved(d, until: nil)
        }
    }
}
