import MandateCrypto

/// One verifiable statement of who is calling, for the upstream: a short-lived JWT in
/// `Txn-Token`, after the OAuth Transaction Tokens draft (draft-ietf-oauth-transaction-tokens):
/// `typ` `txntoken+jwt`, signed by the proxy's key, published as a JWKS on the admin listener.
public final class TxnTokenIssuer: Sendable {
    public struct Key: Sendable {
        public let key: SigningKey
        public let kid: String
        let ed25519: Ed25519.Signer?
        public init(_ key: SigningKey) {
            self.key = key
            kid = key.thumbprint  // RFC 7638: stable, and the upstream can check it
            if case .ed25519(let seed, _) = key { ed25519 = Ed25519.Signer(seed: seed) } else { ed25519 = nil }
        }
        func sign(_ input: [UInt8]) -> [UInt8] { ed25519?.sign(input) ?? key.sign(input) }
    }

    /// The first key signs; all are published (rotation: add the new key first, keep the old
    /// one listed until its last tokens expire, reload).
    public let keys: [Key]
    public let settings: ProxyConfig.TxnToken
    private let header: [UInt8]

    public init(keys: [SigningKey], settings: ProxyConfig.TxnToken) {
        self.keys = keys.map(Key.init)
        self.settings = settings
        let first = self.keys[0]
        var h = #"{"alg":""# + first.key.algorithm.rawValue + #"","typ":"txntoken+jwt","kid":"#
        JSONText.appendString(first.kid, to: &h)
        h += "}"
        var out: [UInt8] = []
        Base64URL.encode(Array(h.utf8), into: &out)
        header = out
    }

    /// `{"keys":[…]}` with each public key, its kid, alg and use.
    public var jwks: [UInt8] {
        let list = keys.map { k -> String in
            var m = k.key.publicJWK.members
            m.append(("kid", .string(k.kid)))
            m.append(("alg", .string(k.key.algorithm.rawValue)))
            m.append(("use", .string("sig")))
            return String(decoding: JSONObject(members: m).serialized(), as: UTF8.self)
        }
        return Array(("{\"keys\":[" + list.joined(separator: ",") + "]}\n").utf8)
    }

    /// Claims: `txn` (the request id), `sub` (the principal), `aud` (the trust domain), `iat`,
    /// `exp`, `scope`, `req_wl` (this proxy), `rctx` (`req_ip`, and the organisation or issuer
    /// the principal comes through), `tctx.chain` (the verified chain) and `tctx.agent`.
    public func token(chain: VerifiedChain, requestID: String, peer: String, now: Int64) -> String {
        var c = "{\"iss\":"
        JSONText.appendString(settings.workload, to: &c)
        c += ",\"aud\":"
        JSONText.appendString(settings.trustDomain, to: &c)
        c += ",\"iat\":\(now),\"exp\":\(now + Int64(settings.ttl)),\"txn\":"
        JSONText.appendString(requestID, to: &c)
        c += ",\"sub\":"
        JSONText.appendString(chain.principal, to: &c)
        c += ",\"scope\":"
        JSONText.appendString(chain.scopeText, to: &c)
        c += ",\"req_wl\":"
        JSONText.appendString(settings.workload, to: &c)
        c += ",\"rctx\":{\"req_ip\":"
        JSONText.appendString(peer, to: &c)
        if let org = chain.organization { c += ",\"org\":"; JSONText.appendString(org, to: &c) }
        if let iss = chain.issuer { c += ",\"token_issuer\":"; JSONText.appendString(iss, to: &c) }
        c += "},\"tctx\":{\"agent\":"
        JSONText.appendString(chain.agent, to: &c)
        c += ",\"chain\":"
        JSONText.appendArray(chain.dids, to: &c)
        c += "}}"
        var out = header
        out.append(UInt8(ascii: "."))
        Base64URL.encode(Array(c.utf8), into: &out)
        let sig = keys[0].sign(out)
        out.append(UInt8(ascii: "."))
        Base64URL.encode(sig, into: &out)
        return String(decoding: out, as: UTF8.self)
    }
}
