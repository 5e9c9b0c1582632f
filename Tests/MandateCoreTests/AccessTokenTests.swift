import Synchronization
import Testing
@testable import MandateCore
import MandateCrypto

/// RFC 9068 access tokens and the issuer's key set, without a network: the fetcher answers from
/// a table the test fills.
@Suite struct AccessTokenTests {
    final class Table: DocumentFetcher {
        let docs = Mutex<[String: [UInt8]]>([:])
        let hits = Atomic<Int>(0)
        func fetch(_ url: String, done: @escaping @Sendable (Result<[UInt8], Reason>) -> Void) {
            hits.add(1, ordering: .relaxed)
            if let d = docs.withLock({ $0[url] }) { done(.success(d)) } else { done(.failure(Reason("HTTP 404"))) }
        }
    }

    let issuer = "https://as.example/tenant"
    let signer = SigningKey.generate(.es256)

    func jwks(_ keys: [(String, SigningKey)]) -> [UInt8] {
        let list = keys.map { kid, k -> String in
            var members = k.publicJWK.members
            members.append(("kid", .string(kid)))
            return String(decoding: JSONObject(members: members).serialized(), as: UTF8.self)
        }
        return Array(("{\"keys\":[" + list.joined(separator: ",") + "]}").utf8)
    }

    func rules(_ table: Table) -> AccessTokenRules {
        var s = ProxyConfig.OAuthIssuer(issuer: issuer)
        s.maxActDepth = 2
        let keys = IssuerKeys(issuer: issuer, jwksURI: nil, settings: s.keys, fetcher: table, clock: { 1_000 })
        return AccessTokenRules(issuers: [.init(settings: s, keys: keys)], defaultAudience: publicOrigin, clockSkew: 30,
                                limits: .init())
    }

    func token(_ claims: [(String, JSONValue)], kid: String = "k1", typ: String = "at+jwt") -> ArraySlice<UInt8> {
        var base: [(String, JSONValue)] = [("iss", .string(issuer)), ("aud", .string(publicOrigin)), ("sub", .string("alice")),
                                           ("client_id", .string("app")), ("exp", .integer(now + 60)),
                                           ("iat", .integer(now - 1)), ("jti", .string(Mint.newID()))]
        for (n, v) in claims { base.removeAll { $0.0 == n }; if v != .null { base.append((n, v)) } }
        return Array(signer.compactJWS(header: [("typ", .string(typ)), ("kid", .string(kid))], claims: JSONObject(members: base)).utf8)[...]
    }

    func served(_ t: Table) {
        t.docs.withLock {
            $0["https://as.example/.well-known/oauth-authorization-server/tenant"] =
                Array(#"{"issuer":"https://as.example/tenant","jwks_uri":"https://as.example/jwks"}"#.utf8)
            $0["https://as.example/jwks"] = jwks([("k1", signer)])
        }
    }

    /// Walks past the first fetch (the fetcher answers at once).
    func verify(_ r: AccessTokenRules, _ t: ArraySlice<UInt8>) -> ChainWalker.Outcome {
        let first = r.verify(t, now: now)
        if case .pending = first { return r.verify(t, now: now) }
        return first
    }

    @Test func discoversKeysThroughRFC8414AndVerifies() {
        let t = Table(); served(t)
        guard case .verified(let c) = verify(rules(t), token([("act", .object(JSONObject(members: [("sub", .string("agent-2")),
            ("act", .object(JSONObject(members: [("sub", .string("agent-1"))])))])))])) else { Issue.record("not verified"); return }
        #expect(c.principal == "alice" && c.agent == "agent-2" && c.dids == ["alice", "agent-1", "agent-2"])
        #expect(c.issuer == issuer && !c.senderConstrained)
    }

    @Test func metadataMustNameTheIssuer() {
        let t = Table(); served(t)
        t.docs.withLock {
            $0["https://as.example/.well-known/oauth-authorization-server/tenant"] =
                Array(#"{"issuer":"https://evil.example","jwks_uri":"https://evil.example/jwks"}"#.utf8)
        }
        guard case .refused(let d) = verify(rules(t), token([])) else { Issue.record("accepted"); return }
        #expect(d.status == 503 && d.description.contains("metadata issuer is not https://as.example/tenant"), "\(d.description)")
    }

    @Test func refusesWhatRFC9068Refuses() {
        let t = Table(); served(t)
        let r = rules(t)
        _ = verify(r, token([]))
        let cases: [(ArraySlice<UInt8>, String)] = [
            (token([], typ: "JWT"), "typ must be at+jwt"),
            (token([("exp", .integer(now - 100))]), "expired"),
            (token([("aud", .string("https://other.example"))]), "aud does not include"),
            (token([("client_id", .null)]), "client_id is required"),
            (token([("jti", .null)]), "jti is required"),
            (token([("iat", .null)]), "iat is required"),
            (token([("sub", .string("a,b"))]), "sub is required"),
            (token([("iss", .string("https://stranger.example"))]), "not a configured issuer"),
            (token([("nbf", .integer(now + 600))]), "nbf is in the future"),
            (token([("cnf", .object(JSONObject(members: [])))]), "exactly one of jkt and x5t#S256"),
            (token([("act", .object(JSONObject(members: [("sub", .string("x")), ("act", .object(JSONObject(members: [
                ("sub", .string("y")), ("act", .object(JSONObject(members: [("sub", .string("z"))])))])))])))]), "deeper than 2"),
            (token([], kid: "k9"), "kid is not in the issuer's JWKS"),
        ]
        for (tok, text) in cases {
            guard case .refused(let d) = verify(r, tok) else { Issue.record("accepted: \(text)"); continue }
            #expect(d.description.contains(text), "\(d.description)")
        }
    }

    @Test func jwksRules() throws {
        let other = SigningKey.generate(.edDSA)
        #expect(try IssuerKeys.jwks(jwks([("a", signer), ("b", other)])).get().count == 2)
        guard case .failure(let dup) = IssuerKeys.jwks(jwks([("a", signer), ("a", other)])) else { Issue.record("dup kid"); return }
        #expect(dup.text == "the JWKS has kid a twice")
        // RSA (not supported) and encryption keys are skipped, not fatal.
        let mixed = Array(#"{"keys":[{"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB"},{"kty":"EC","crv":"P-256","kid":"e","use":"enc","x":"x","y":"y"}]}"#.utf8)
        #expect(try IssuerKeys.jwks(mixed).get().isEmpty)
        #expect(IssuerKeys.metadataURLs("https://as.example") == ["https://as.example/.well-known/oauth-authorization-server",
                                                               "https://as.example/.well-known/openid-configuration"])
    }

    /// RFC 8705 §3: an access token with cnf x5t#S256, sent as Bearer over that certificate.
    @Test func certificateBoundAccessTokenThroughThePipeline() throws {
        let t = Table(); served(t)
        var cfg = config(principals: [])
        var issuerSettings = ProxyConfig.OAuthIssuer(issuer: issuer)
        issuerSettings.audience = publicOrigin
        cfg.oauthIssuers = [issuerSettings]
        let keys = IssuerKeys(issuer: issuer, jwksURI: nil, settings: .init(), fetcher: t, clock: { 1_000 })
        let v = try Verifier(config: cfg, resolvers: .init(issuers: [keys]))
        let x5t = Base64URL.encode(SHA256.hash(Array("client certificate DER".utf8)))
        let tok = String(decoding: token([("cnf", .object(JSONObject(members: [("x5t#S256", .string(x5t))])))]), as: UTF8.self)
        let h = head(leaf: tok, proof: nil, scheme: "Bearer")
        let cert = ClientCertificate(thumbprint: x5t, keyThumbprint: nil)  // an RSA certificate binds too: no key rule here
        _ = v.verify(h, certificate: cert, now: now)  // the first one waits for the JWKS
        let ok = try v.verify(h, certificate: cert, now: now).get()
        #expect(ok.chain.principal == "alice" && ok.chain.certificateThumbprint == x5t)
        let other = ClientCertificate(thumbprint: Base64URL.encode(SHA256.hash(Array("other".utf8))), keyThumbprint: nil)
        #expect(v.verify(h, certificate: other, now: now).denial?.description.contains("another client certificate") == true)
        #expect(v.verify(h, certificate: nil, now: now).denial?.description.contains("none was presented") == true)
        // The refusal challenges both schemes: Bearer is acceptable here.
        #expect(v.verify(h, certificate: nil, now: now).denial?.challenges.count == 2)
    }
}
