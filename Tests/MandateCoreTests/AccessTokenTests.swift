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

    @Test func identitiesAndScopesThatCouldPassForOthers() {
        let t = Table(); served(t)
        let r = rules(t)
        _ = verify(r, token([]))
        let did = SigningKey.generate(.edDSA).did
        let cases: [(ArraySlice<UInt8>, String)] = [
            // A DID is proven by its key in a chain, never named by an issuer.
            (token([("sub", .string(did))]), "sub is required (printable, no comma, not a DID)"),
            (token([("client_id", .string(did))]), "client_id must be printable, without comma, not a DID"),
            (token([("act", .object(JSONObject(members: [("sub", .string(did))])))]), "act must be an object with a sub"),
            // RFC 6749 §3.3: U+212A KELVIN SIGN equals "K" as a Swift String; CR LF would split a header.
            (token([("scope", .string("\u{212A}YC:read"))]), "scope has a character outside RFC 6749 scope-token"),
            (token([("scope", .string("echo\r\nX-Injected: 1"))]), "scope has a character outside RFC 6749 scope-token"),
        ]
        for (tok, text) in cases {
            guard case .refused(let d) = verify(r, tok) else { Issue.record("accepted: \(text)"); continue }
            #expect(d.description.contains(text), "\(d.description)")
        }
        guard case .verified(let c) = verify(r, token([("scope", .string("KYC:read  echo"))])) else { Issue.record("refused"); return }
        #expect(c.scopes == ["KYC:read", "echo"])
    }

    /// Answers only when the test says so; counts requests.
    final class HeldPoster: FormPoster {
        let pending = Mutex<[@Sendable (Result<(status: Int, body: [UInt8]), Reason>) -> Void]>([])
        func post(_ url: String, form: String, user: String, password: String,
                  done: @escaping @Sendable (Result<(status: Int, body: [UInt8]), Reason>) -> Void) {
            pending.withLock { $0.append(done) }
        }
        var count: Int { pending.withLock { $0.count } }
        func answer(_ body: String) {
            for done in pending.withLock({ p in defer { p = [] }; return p }) { done(.success((200, Array(body.utf8)))) }
        }
    }

    func introspector(_ p: HeldPoster) -> Introspector {
        var s = ProxyConfig.OAuthIssuer(issuer: issuer)
        s.introspection = .init(endpoint: "https://as.example/introspect", clientID: "rs", clientSecret: "pw")
        return Introspector(settings: s, defaultAudience: publicOrigin, poster: p, clock: { Double(now) })!
    }

    @Test func introspectionsInFlightAreCapped() {
        let p = HeldPoster(), i = introspector(p)
        for n in 0 ..< Introspector.maxInFlight {
            guard case .pending = i.lookup(Array("token-\(n)".utf8)[...], now: now) else { Issue.record("not asked"); return }
        }
        // Random tokens are the client's choice: beyond the cap, 503 and no request.
        guard case .refused(let d) = i.lookup(Array("one-more".utf8)[...], now: now) else { Issue.record("asked"); return }
        #expect(d.status == 503 && d.retryAfter == 1 && p.count == Introspector.maxInFlight)
        p.answer(#"{"active":false}"#)
        guard case .pending = i.lookup(Array("one-more".utf8)[...], now: now) else { Issue.record("still capped"); return }
    }

    @Test func introspectionExpMustBeANumericDate() {
        let p = HeldPoster(), i = introspector(p)
        for (n, exp) in ["\"\(now + 60)\"", "\(now + 60).5", "-1"].enumerated() {
            let tok = Array("tok-\(n)".utf8)[...]
            _ = i.lookup(tok, now: now)
            p.answer(#"{"active":true,"sub":"carol","exp":"# + exp + "}")
            guard case .refused(let d) = i.lookup(tok, now: now) else { Issue.record("accepted exp \(exp)"); continue }
            #expect(d.description.contains("exp must be a NumericDate"), "\(d.description)")
        }
    }

    @Test func introspectionNotBeforeIsHonoured() {
        let p = HeldPoster(), i = introspector(p)
        let tok = Array("tok-nbf".utf8)[...]
        _ = i.lookup(tok, now: now)
        p.answer(#"{"active":true,"sub":"carol","nbf":"# + "\(now + 3600)}")
        guard case .refused(let d) = i.lookup(tok, now: now) else { Issue.record("accepted a future nbf"); return }
        #expect(d.description.contains("not yet valid (nbf)"))
    }

    @Test func jwksRules() throws {
        let other = SigningKey.generate(.edDSA)
        #expect(try IssuerKeys.jwks(jwks([("a", signer), ("b", other)])).get().count == 2)
        guard case .failure(let dup) = IssuerKeys.jwks(jwks([("a", signer), ("a", other)])) else { Issue.record("dup kid"); return }
        #expect(dup.text == "the JWKS has kid a twice")
        // Too-small RSA and encryption keys are skipped, not fatal.
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
