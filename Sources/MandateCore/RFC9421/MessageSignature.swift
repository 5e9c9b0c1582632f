import MandateCrypto
import MandateHTTP

/// An HTTP Message Signature (RFC 9421) as the proof of possession of a DPoP-bound leaf's key:
/// `Signature-Input` and `Signature` with exactly one label, over at least the components that
/// pin this request (`MessageSignature.required`).
public struct MessageSignature: Sendable {
    public let label: String
    public let components: [String]
    public let created: Int64
    public let expires: Int64?
    /// Required by the proxy (single use), not by RFC 9421.
    public let nonce: String?
    public let keyID: String
    public let algorithm: String?
    /// The Signature-Input member as sent: `@signature-params` (§2.3).
    let paramsText: String
    public let signature: [UInt8]

    /// §3.3: the two algorithms whose keys an agent can have.
    public static let algorithms: [String: JWSAlgorithm] = ["ed25519": .edDSA, "ecdsa-p256-sha256": .es256]

    public static func parse(input: String, signature: String) -> Result<MessageSignature, Reason> {
        let inputs: [SF.Member], sigs: [SF.Member]
        switch (SF.dictionary(input), SF.dictionary(signature)) {
        case (.success(let a), .success(let b)): inputs = a; sigs = b
        case (.failure(let r), _), (_, .failure(let r)): return .failure(r)
        }
        // One signature: with several, which one proves what?
        guard inputs.count == 1, sigs.count == 1, inputs[0].key == sigs[0].key else {
            return .failure(Reason("exactly one signature, with the same label in Signature-Input and Signature"))
        }
        guard case .innerList(let items, let params) = inputs[0].value else {
            return .failure(Reason("Signature-Input must be an inner list of components"))
        }
        guard case .item(let sigItem) = sigs[0].value, let sig = sigItem.value.bytes else {
            return .failure(Reason("Signature must be a byte sequence"))
        }
        var components: [String] = []
        for item in items {
            guard let name = item.value.string, item.params.isEmpty else {
                return .failure(Reason("a covered component must be a plain name (no parameters)"))
            }
            guard !components.contains(name) else { return .failure(Reason("component \(name) is covered twice")) }
            components.append(name)
        }
        var created: Int64?, expires: Int64?, nonce: String?, keyid: String?, alg: String?
        for p in params {
            switch p.key {
            case "created": created = p.value.integer
            case "expires": expires = p.value.integer
            case "nonce": nonce = p.value.string
            case "keyid": keyid = p.value.string
            case "alg": alg = p.value.string
            case "tag": break
            default: return .failure(Reason("unknown signature parameter \(p.key)"))
            }
        }
        guard let created else { return .failure(Reason("created is required")) }
        if let nonce, nonce.isEmpty || nonce.utf8.count > 256 { return .failure(Reason("nonce must be 1 to 256 bytes")) }
        guard let keyid, !keyid.isEmpty else { return .failure(Reason("keyid is required")) }
        if let alg, algorithms[alg] == nil { return .failure(Reason("alg \(alg) is not ed25519 or ecdsa-p256-sha256")) }
        guard sig.count == 64 else { return .failure(Reason("the signature must be 64 bytes")) }
        return .success(MessageSignature(label: inputs[0].key, components: components, created: created, expires: expires,
                                         nonce: nonce, keyID: keyid, algorithm: alg, paramsText: inputs[0].text, signature: sig))
    }

    /// What the signature must cover: the method, authority and path always; the query when
    /// there is one; Content-Digest when there is a body; Authorization when it is sent.
    public func missingCoverage(_ head: HTTPRequestHead, hasBody: Bool) -> String? {
        var needed = ["@method", "@authority", "@path"]
        if head.query != nil { needed.append("@query") }
        if hasBody { needed.append("content-digest") }
        if head.value("Authorization") != nil { needed.append("authorization") }
        return needed.first { !components.contains($0) }
    }

    /// §2.5. `authority` and `scheme` are the public origin's: a signature for another host
    /// does not verify here.
    public func base(_ head: HTTPRequestHead, scheme: String, authority: String) -> Result<[UInt8], Reason> {
        var out = ""
        for c in components {
            let value: String
            switch c {
            case "@method": value = head.method
            case "@authority": value = authority
            case "@scheme": value = scheme
            case "@path": value = head.path.isEmpty ? "/" : String(head.path)
            case "@query": value = "?" + (head.query ?? "")
            case "@request-target": value = String(head.target)
            case "@target-uri": value = scheme + "://" + authority + head.target
            default:
                guard !c.hasPrefix("@") else { return .failure(Reason("component \(c) is not supported")) }
                // §2.1: field lines combined with ", ", each value trimmed.
                let lines = head.values(c)
                guard !lines.isEmpty else { return .failure(Reason("covered field \(c) is not in the request")) }
                value = lines.map { Substring($0).trimmingASCIIWhitespace() }.joined(separator: ", ")
            }
            out += "\"\(c)\": \(value)\n"
        }
        out += "\"@signature-params\": " + paramsText
        return .success(Array(out.utf8))
    }

    public func verify(_ base: [UInt8], with key: VerificationKey) -> Bool {
        if let alg = algorithm, Self.algorithms[alg] != key.algorithm { return false }
        return key.verify(signature: signature, input: base)
    }
}

/// RFC 9530 Content-Digest: the digest the body must have, the strongest known one.
public struct ContentDigest: Sendable, Equatable {
    public let algorithm: StreamingDigest.Algorithm
    public let digest: [UInt8]

    public static func parse(_ field: String) -> Result<ContentDigest, Reason> {
        guard case .success(let members) = SF.dictionary(field) else { return .failure(Reason("Content-Digest is not a dictionary")) }
        func value(_ k: String, _ n: Int) -> [UInt8]? {
            guard let m = members.first(where: { $0.key == k }), case .item(let i) = m.value, let b = i.value.bytes, b.count == n else { return nil }
            return b
        }
        if let d = value("sha-512", 64) { return .success(ContentDigest(algorithm: .sha512, digest: d)) }
        if let d = value("sha-256", 32) { return .success(ContentDigest(algorithm: .sha256, digest: d)) }
        return .failure(Reason("Content-Digest has no sha-256 or sha-512 digest"))
    }
}
