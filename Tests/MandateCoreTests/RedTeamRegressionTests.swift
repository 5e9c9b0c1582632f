import Testing
@testable import MandateCore
import MandateHTTP

/// Each test is a finding from an attack on a running proxy, kept so it stays fixed.
@Suite struct RedTeamRegressionTests {
    let principal = SigningKey.generate(.edDSA)
    let middle = SigningKey.generate(.es256)
    let agent = SigningKey.generate(.edDSA)

    func walk(_ tokens: [String], principal: SigningKey? = nil) -> Denial? {
        let w = ChainWalker(rules: .init(principals: [(principal ?? self.principal).did], audience: publicOrigin, maxChainLength: 5,
                                         clockSkew: 30, maxLifetime: 86400, limits: .init()), dids: DIDCache())
        if case .failure(let d) = w.walk(tokens.map { Array($0.utf8)[...] }, ancestry: [], now: now).result { return d }
        return nil
    }

    /// exp near Int64.max once trapped on `exp + skew` and took the process down.
    @Test func rejectsNumericDateThatWouldOverflow() {
        var l = Link(principal, to: agent)
        l.exp = .integer(Int64.max)
        #expect(walk([l.token])?.description.contains("NumericDate") == true)
        var m = Link(principal, to: agent)
        m.iat = .integer(Int64.max - 1)
        #expect(walk([m.token]) != nil)
    }

    @Test func rejectsProofWithOverflowingIat() throws {
        let v = try Verifier(config: config(principals: [principal]))
        let leaf = Link(principal, to: agent).token
        let p = Mint.proof(key: agent, method: "GET", htu: publicOrigin + "/orders", accessToken: leaf,
                           issuedAt: Int64.max, jti: "j")
        #expect(v.verify(head(leaf: leaf, proof: p), now: now).denial?.code == .invalidDPoPProof)
    }

    /// Scope reaches the upstream in Mandate-Scope: CR LF there would split the header.
    @Test func rejectsScopeOutsideScopeTokenGrammar() {
        for bad in ["read\r\nX-Injected: 1", "read\u{7f}", "read \"write\"", "read\\"] {
            var l = Link(principal, to: agent)
            l.scope = bad
            #expect(walk([l.token])?.description.contains("scope-token") == true, "\(bad)")
        }
    }

    /// Kelvin sign K (U+212A) is canonically equivalent to K: Swift's == would match it.
    @Test func comparesKeyIDByteForByte() throws {
        // A principal whose did:key has a K to respell.
        let p = try #require((0..<200).lazy.map { _ in SigningKey.generate(.edDSA) }.first { $0.keyID.contains("K") })
        var l = Link(p, to: agent)
        l.kid = l.kid.replacingFirstK(with: "\u{212A}")
        #expect(l.kid == p.keyID)  // equal as Swift Strings...
        #expect(walk([l.token], principal: p)?.description.contains("kid") == true)  // ...but not as bytes
    }

    @Test func connectionCannotNominateHost() throws {
        let rewrite = UpstreamHeaders(trustedProxies: try TrustedProxies([]))
        let chain = VerifiedChain(principal: "did:key:zA", agent: "did:key:zB", dids: [], scopes: [],
                                  proofKeyThumbprint: "", notBefore: 0, expiresAt: .max, ancestry: [])
        let h = HTTPRequestHead(method: "GET", target: "/", headers: [HTTPHeader("Host", "api.example"),
                                                                       HTTPHeader("Connection", "Host")])
        let out = rewrite.rewrite(h, chain: chain, requestID: "r", peer: "127.0.0.1")
        #expect(out.contains(HTTPHeader("Host", "api.example")))
    }

    @Test func rejectsPathParameters() {
        for p in ["/invoices/..;/admin/x", "/admin;/x", "/admin;jsessionid=1/x"] {
            #expect(PathNormalizer.normalize(p.utf8, .policy) == .failure(.pathParameter), "\(p)")
        }
    }

    @Test func rejectsEncodedSemicolonAndDoubleEncoding() {
        for p in ["/admin%3B/x", "/admin%3b/x", "/x/..%3b/admin/x"] {
            #expect(PathNormalizer.normalize(p.utf8, .policy) == .failure(.pathParameter), "\(p)")
        }
        #expect(PathNormalizer.normalize("/admin%252fx".utf8, .policy) == .failure(.doubleEncoding))
    }

    @Test func rejectsEncodedControlCharacters() {
        #expect(PathNormalizer.normalize("/admin%09/x".utf8, .policy) == .failure(.encodedControl))
        #expect(PathNormalizer.normalize("/a%7F".utf8, .policy) == .failure(.encodedControl))
    }

    @Test func rejectsOverlongUTF8InPath() {
        #expect(PathNormalizer.normalize("/admin%c0%af/x".utf8, .policy) == .failure(.invalidUTF8))
        #expect(PathNormalizer.normalize("/caf%C3%A9".utf8, .policy) == .success("/caf%C3%A9"))
    }

    /// A reload that raised dpop_max_age once let a proof be replayed after the store forgot it.
    @Test func reloadThatWidensTheProofWindowKeepsOldProofsSingleUse() throws {
        var c = config(principals: [principal])
        c.dpopMaxAge = 2
        let v1 = try Verifier(config: c)
        let leaf = Link(principal, to: agent).token
        let h = head(leaf: leaf, proof: proof(agent, for: leaf, iat: now))
        #expect(v1.verify(h, now: now).accepted)
        #expect(v1.verify(h, now: now).denial?.description.contains("already been used") == true)
        c.dpopMaxAge = 300
        let v2 = try v1.successor(config: c, now: now + 1)
        #expect(v2.verify(h, now: now + 4).denial?.code == .invalidDPoPProof)
        // New proofs get the wider window.
        let fresh = head(leaf: leaf, proof: proof(agent, for: leaf, iat: now + 10))
        #expect(v2.verify(fresh, now: now + 100).accepted)
    }

    /// A full replay store refuses (503, Retry-After) rather than forgetting an unexpired proof.
    @Test func fullReplayStoreAnswers503WithRetryAfter() throws {
        var c = config(principals: [principal])
        c.replayCacheSize = 1
        let v = try Verifier(config: c)
        let leaf = Link(principal, to: agent).token
        #expect(v.verify(head(leaf: leaf, proof: proof(agent, for: leaf)), now: now).accepted)
        let d = v.verify(head(leaf: leaf, proof: proof(agent, for: leaf)), now: now).denial
        #expect(d?.code == .temporarilyUnavailable)
        #expect(d?.status == 503)
        #expect(d?.retryAfter == 1)
    }

    @Test func describesDIDRefusalsWithoutTypeNames() {
        var l = Link(principal, to: agent)
        l.sub = "did:web:example.com"
        let d = walk([l.token])?.description ?? ""
        #expect(d.contains("did:web resolution is not enabled"))
        #expect(!d.contains("MandateCore"))
    }
}

extension String {
    func replacingFirstK(with s: String) -> String {
        guard let i = firstIndex(of: "K") else { return self }
        return String(self[..<i]) + s + String(self[index(after: i)...])
    }
}
