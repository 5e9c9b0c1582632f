import MandateCrypto

/// The keys a DID resolves to, each with the verification relationships it may be used for
/// (DID Core §5.3): delegations are signed with an `assertionMethod` key, and an agent's proof
/// key is one of its `authentication` keys. did:key and did:jwk have one key in both.
public struct DIDDocument: Sendable {
    public struct Method: Sendable {
        /// Absolute: `did#fragment`.
        public let id: String
        public let key: VerificationKey
        /// RFC 7638, made once.
        public let thumbprint: String
        public let authentication: Bool
        public let assertion: Bool
    }

    public let methods: [Method]

    /// The only key of a did:key or did:jwk.
    init(single key: VerificationKey, id: String) {
        methods = [Method(id: id, key: key, thumbprint: key.thumbprint, authentication: true, assertion: true)]
    }

    init(methods: [Method]) { self.methods = methods }

    /// The `assertionMethod` key a delegation's `kid` names, compared byte for byte.
    public func assertionMethod(_ kid: String) -> Method? {
        methods.first { $0.assertion && sameBytes($0.id, kid) }
    }

    /// RFC 7638 thumbprints of the `authentication` keys: the keys the agent may prove with.
    public var authenticationThumbprints: [String] { methods.filter(\.authentication).map(\.thumbprint) }
}

/// did:web (W3C CCG did:web method, "Read"): the DID names an HTTPS URL whose document it is.
public enum DIDWeb {
    /// `did:web:host[%3Aport][:path…]` → `https://host[:port]/path…/did.json`, or
    /// `/.well-known/did.json` without a path. IP-literal hosts are refused.
    public static func url(for did: String) -> Result<String, DID.Refusal> {
        guard did.hasPrefix("did:web:"), DID.isWellFormed(did) else { return .failure(.malformed("not a did:web DID")) }
        let parts = did.dropFirst(8).split(separator: ":", omittingEmptySubsequences: false)
        guard let authority = parts.first, !parts.contains(where: \.isEmpty) else {
            return .failure(.malformed("did:web has an empty segment"))
        }
        // Only the port's colon is percent-encoded in the host part (did:web §3.2).
        var a = Array(authority.utf8)
        if let i = a.indices.first(where: { a[$0] == 0x25 && $0 + 2 < a.count && a[$0 + 1] == 0x33 && (a[$0 + 2] | 0x20) == 0x61 }) {
            a.replaceSubrange(i ..< i + 3, with: [0x3a])
        }
        let hostPort = String(decoding: a, as: UTF8.self)
        guard !hostPort.contains("%") else { return .failure(.malformed("did:web host has a percent-encoding other than %3A")) }
        var host = Substring(hostPort), port: Substring? = nil
        if let colon = hostPort.firstIndex(of: ":") {
            host = hostPort[..<colon]
            port = hostPort[hostPort.index(after: colon)...]
            guard let p = Int(port!), (1...65535).contains(p), port!.first != "0" else {
                return .failure(.malformed("did:web port is not a number in 1...65535"))
            }
        }
        guard isDomainName(host) else {
            return .failure(.malformed("did:web host must be a domain name (no IP address)"))
        }
        let path = parts.count == 1 ? "/.well-known" : "/" + parts.dropFirst().joined(separator: "/")
        return .success("https://" + hostPort + path + "/did.json")
    }

    /// LDH labels, a last label that is not all digits (so no dotted-quad IPv4 either). One
    /// label (an intranet name, localhost) is a name too; where it points is checked at connect.
    static func isDomainName(_ host: Substring) -> Bool {
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        guard host.utf8.count <= 253, let last = labels.last,
              !last.allSatisfy({ $0.isASCII && $0.isNumber }) else { return false }
        return labels.allSatisfy { l in
            !l.isEmpty && l.utf8.count <= 63 && l.first != "-" && l.last != "-"
                && l.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2d }
        }
    }

    public static let maxMethods = 32

    /// A fetched did.json: its `id` must be the DID; keys are `publicKeyJwk` (a public JWK, one
    /// algorithm each) or `publicKeyMultibase` (Ed25519 or P-256 multikey), controlled by the DID.
    public static func document(_ bytes: [UInt8], did: String) -> Result<DIDDocument, DID.Refusal> {
        guard case .success(let doc) = StrictJSON.parseObject(bytes) else {
            return .failure(.malformed("the DID document is not a JSON object (or repeats a member)"))
        }
        guard let id = doc["id"]?.string, sameBytes(id, did) else {
            return .failure(.malformed("the DID document's id is not the DID"))
        }
        var declared: [(String, JSONObject)] = []
        func absolute(_ ref: String) -> String { ref.hasPrefix("#") ? did + ref : ref }
        for v in doc["verificationMethod"]?.array ?? [] {
            guard let m = v.object, let mid = m["id"]?.string else { return .failure(.malformed("a verificationMethod has no id")) }
            declared.append((absolute(mid), m))
        }
        // A relationship lists references to declared methods, or embeds its own.
        func relationship(_ name: String) throws(DID.Refusal) -> Set<String> {
            guard let v = doc[name] else { return [] }
            guard let list = v.array else { throw .malformed("\(name) must be an array") }
            var ids: Set<String> = []
            for item in list {
                if let ref = item.string {
                    ids.insert(absolute(ref))
                } else if let m = item.object, let mid = m["id"]?.string {
                    declared.append((absolute(mid), m))
                    ids.insert(absolute(mid))
                } else {
                    throw .malformed("\(name) holds something that is not a verification method")
                }
            }
            return ids
        }
        let authentication: Set<String>, assertion: Set<String>
        do {
            authentication = try relationship("authentication")
            assertion = try relationship("assertionMethod")
        } catch { return .failure(error) }
        guard declared.count <= maxMethods else { return .failure(.malformed("the DID document has over \(maxMethods) keys")) }
        var methods: [DIDDocument.Method] = []
        for (mid, m) in declared {
            guard mid.hasPrefix(did + "#") else { return .failure(.malformed("verification method \(mid) is not under the DID")) }
            guard methods.allSatisfy({ $0.id != mid }) else { return .failure(.malformed("verification method \(mid) is declared twice")) }
            guard let controller = m["controller"]?.string, sameBytes(controller, did) else {
                return .failure(.malformed("verification method \(mid) is not controlled by the DID"))
            }
            let key: VerificationKey
            switch (m["publicKeyJwk"]?.object, m["publicKeyMultibase"]?.string) {
            case (let jwk?, nil):
                switch JWK.publicKey(jwk) {
                case .success(let k): key = k
                case .failure(let e): return .failure(.key(e))
                }
            case (nil, let mb?):
                switch DID.resolve("did:key:" + mb) {
                case .success(let r): key = r.key
                case .failure: return .failure(.malformed("verification method \(mid): publicKeyMultibase is not an Ed25519 or P-256 multikey"))
                }
            default:
                return .failure(.malformed("verification method \(mid) needs exactly one of publicKeyJwk and publicKeyMultibase"))
            }
            methods.append(.init(id: mid, key: key, thumbprint: key.thumbprint, authentication: authentication.contains(mid),
                                 assertion: assertion.contains(mid)))
        }
        return .success(DIDDocument(methods: methods))
    }
}
