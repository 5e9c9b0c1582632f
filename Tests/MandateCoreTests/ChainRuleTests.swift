import Testing
@testable import MandateCore
import MandateCrypto

/// The chain rules of docs/credentials.md, one test per rule, through `ChainWalker`.
@Suite struct ChainRuleTests {
    let principal = SigningKey.generate(.edDSA)
    let middle = SigningKey.generate(.es256)
    let agent = SigningKey.generate(.edDSA)

    func walker(_ principals: [SigningKey]? = nil, maxChainLength: Int = 5) -> ChainWalker {
        ChainWalker(rules: .init(principals: Set((principals ?? [principal]).map(\.did)), audience: publicOrigin,
                                 maxChainLength: maxChainLength, clockSkew: 30, maxLifetime: 24 * 3600,
                                 limits: .init()),
                    dids: DIDCache())
    }

    func walk(_ tokens: [String], at t: Int64 = now, _ w: ChainWalker? = nil) -> Result<VerifiedChain, Denial> {
        (w ?? walker()).walk(tokens.map(bytes), ancestry: [], now: t).result
    }

    func expectRefused(_ tokens: [String], _ text: String, at t: Int64 = now, _ w: ChainWalker? = nil,
                       sourceLocation: SourceLocation = #_sourceLocation) {
        let d = walk(tokens, at: t, w).refused
        #expect(d?.code == .invalidToken, sourceLocation: sourceLocation)
        #expect(d?.status == 401, sourceLocation: sourceLocation)
        #expect(d?.description.contains(text) == true, "got \(d?.description ?? "acceptance")",
                sourceLocation: sourceLocation)
    }

    /// principal → middle → agent, built by hand so each test can break one claim.
    func twoLinks(_ edit: (inout Link, inout Link) -> Void = { _, _ in }) -> [String] {
        var root = Link(principal, to: middle)
        var leaf = Link(middle, to: agent)
        edit(&root, &leaf)
        let r = root.token
        if leaf.prf == nil || leaf.prf == "PARENT" { leaf.prf = prfOf(r) }
        if leaf.prf == "NONE" { leaf.prf = nil }
        return [r, leaf.token]
    }

    // MARK: Accepted chains

    @Test func acceptsOneLinkChainFromEnrolledPrincipal() throws {
        let c = Chain([.edDSA], scopes: ["read"])
        let v = try walk(c.tokens, at: now, walker([c.principal])).get()
        #expect(v.principal == c.principal.did)
        #expect(v.agent == c.proofKey.did)
        #expect(v.dids == [c.principal.did, c.proofKey.did])
        #expect(v.scopes == ["read"])
        #expect(v.proofKeyThumbprint == c.proofKey.thumbprint)
        #expect(v.expiresAt == now - 10 + 3600)
    }

    @Test func acceptsThreeLinkChainWithMixedAlgorithms() throws {
        let c = Chain([.edDSA, .es256, .edDSA], proof: .es256, scopes: ["read write admin", "read write", "read"])
        let v = try walk(c.tokens, at: now, walker([c.principal])).get()
        #expect(v.dids == c.keys.map(\.did))
        #expect(v.scopes == ["read"])
        #expect(v.proofKeyThumbprint == c.proofKey.thumbprint)
    }

    @Test func acceptsHandBuiltTwoLinkChain() {
        #expect(walk(twoLinks()).succeeded)
    }

    @Test func acceptsDidJWKIssuer() throws {
        let jwkDID = "did:jwk:" + Base64URL.encode(principal.publicJWK.serialized())
        var root = Link(principal, to: agent)
        root.iss = jwkDID
        root.kid = jwkDID + "#0"
        let w = ChainWalker(rules: walker().rules, dids: DIDCache())
        var rules = w.rules
        rules.principals = [jwkDID]
        #expect(ChainWalker(rules: rules, dids: DIDCache()).walk([bytes(root.token)], ancestry: [], now: now).result.succeeded)
    }

    // MARK: Root

    @Test func rejectsRootNotEnrolled() {
        let c = Chain([.edDSA])
        expectRefused(c.tokens, "root issuer is not an enrolled principal")
    }

    @Test func rejectsPrfOnRoot() {
        var root = Link(principal, to: agent)
        root.prf = prfOf("something")
        expectRefused([root.token], "the root must not carry prf")
    }

    @Test func rejectsRootNotSignedByIssuerKey() {
        let impostor = SigningKey.generate(.edDSA)
        var root = Link(impostor, to: agent)
        root.iss = principal.did
        root.kid = principal.keyID
        expectRefused([root.token], "signature does not verify")
    }

    @Test func rejectsIssuerThatIsNotAResolvableDID() {
        var root = Link(principal, to: agent)
        root.iss = "did:web:example.com"
        expectRefused([root.token], "not an enrolled principal", walker())
        var rules = walker().rules
        rules.principals.insert("did:web:example.com")
        expectRefused([root.token], "iss is not a resolvable DID", ChainWalker(rules: rules, dids: DIDCache()))
    }

    // MARK: Links below the root

    @Test func rejectsLinkNotSignedByIssuerKey() {
        let impostor = SigningKey.generate(.es256)
        let tokens = twoLinks { _, leaf in
            leaf.signer = impostor  // claims and kid still name `middle`
        }
        expectRefused(tokens, "signature does not verify")
    }

    @Test func rejectsIssuerThatIsNotParentSubject() {
        let stranger = SigningKey.generate(.edDSA)
        let tokens = twoLinks { _, leaf in
            leaf = Link(stranger, to: agent, parent: nil)
        }
        expectRefused(tokens, "iss is not the parent's sub")
    }

    /// The delegate is whoever holds cnf.jkt; a sub naming someone else would spoof the agent.
    /// (This also makes "the signing key is the parent's cnf.jkt" hold for every next link.)
    @Test func rejectsConfirmationKeyThatIsNotTheSubjectKey() {
        let other = SigningKey.generate(.es256)
        let tokens = twoLinks { root, _ in
            root.jkt = other.thumbprint  // sub is still middle's DID
        }
        expectRefused(tokens, "cnf.jkt is not the thumbprint of a key of sub")
    }

    @Test func rejectsLeafNamingAnotherAgentAsSubject() {
        let victim = SigningKey.generate(.edDSA)
        let tokens = twoLinks { _, leaf in
            leaf.sub = victim.did  // cnf.jkt still the holder's key
        }
        expectRefused(tokens, "cnf.jkt is not the thumbprint of a key of sub")
    }

    @Test func rejectsMissingPrf() {
        expectRefused(twoLinks { _, leaf in leaf.prf = "NONE" }, "prf is required below the root")
    }

    @Test func rejectsPrfThatIsNotHashOfParent() {
        expectRefused(twoLinks { _, leaf in leaf.prf = prfOf("another parent") }, "prf is not the hash of the parent token")
    }

    @Test func rejectsPrfOfParentWithDifferentSpelling() {
        // The hash is over the exact ASCII of the parent as presented.
        let tokens = twoLinks()
        var leaf = Link(middle, to: agent)
        leaf.prf = Base64URL.encode(SHA256.hash(Array((tokens[0] + " ").utf8)))
        expectRefused([tokens[0], leaf.token], "prf is not the hash of the parent token")
    }

    @Test func rejectsScopeWidening() {
        let tokens = twoLinks { root, leaf in
            root.scope = "read"
            leaf.scope = "read write"
        }
        expectRefused(tokens, "scope 'write' is wider than the parent's")
    }

    @Test func acceptsScopeNarrowing() throws {
        let tokens = twoLinks { root, leaf in
            root.scope = "read write"
            leaf.scope = "write"
        }
        #expect(try walk(tokens).get().scopes == ["write"])
    }

    @Test func rejectsExpOutlivingParent() {
        let tokens = twoLinks { root, leaf in
            root.exp = .integer(now + 600)
            leaf.exp = .integer(now + 601)
        }
        expectRefused(tokens, "exp outlives the parent delegation")
    }

    @Test func rejectsDepthBeyondRootMaxDepth() {
        expectRefused(twoLinks { root, _ in root.maxDepth = 0 }, "exceeds max_depth 0 set by delegation 1")
        #expect(walk(twoLinks { root, _ in root.maxDepth = 1 }).succeeded)
    }

    @Test func rejectsDepthBeyondAncestorMaxDepthFurtherUp() {
        let k = [principal, middle, SigningKey.generate(.edDSA), agent]
        var tokens: [String] = []
        for i in 0..<3 {
            var l = Link(k[i], to: k[i + 1], parent: tokens.last)
            if i == 0 { l.maxDepth = 1 }
            tokens.append(l.token)
        }
        expectRefused(tokens, "exceeds max_depth 1 set by delegation 1")
        #expect(walk(Array(tokens.prefix(2))).succeeded)
    }

    @Test func rejectsChainLongerThanConfiguredMaximum() {
        let c = Chain([.edDSA, .edDSA, .edDSA])
        expectRefused(c.tokens, "delegation chain longer than 2 links", walker([c.principal], maxChainLength: 2))
        #expect(walk(c.tokens, walker([c.principal], maxChainLength: 3)).succeeded)
    }

    @Test func rejectsChainLongerThanDefaultFive() {
        let c = Chain([.edDSA, .edDSA, .edDSA, .edDSA, .edDSA, .edDSA])
        expectRefused(c.tokens, "longer than 5 links", walker([c.principal], maxChainLength: ProxyConfig().maxChainLength))
    }

    // MARK: Validity in time

    @Test func rejectsExpiredLink() {
        let tokens = twoLinks()
        expectRefused(tokens, "expired", at: now + 3600 + 30)
        #expect(walk(tokens, at: now + 3600 + 29).succeeded)  // within the skew
    }

    @Test func rejectsExpiredAncestor() {
        let tokens = twoLinks { root, leaf in
            root.iat = .integer(now - 7200)
            root.exp = .integer(now - 100)
            leaf.exp = .integer(now - 100)
        }
        expectRefused(tokens, "delegation 1 of 2 (root): expired")
    }

    @Test func rejectsNotBeforeInFuture() {
        expectRefused(twoLinks { _, leaf in leaf.nbf = .integer(now + 31) }, "not yet valid (nbf)")
        #expect(walk(twoLinks { _, leaf in leaf.nbf = .integer(now + 30) }).succeeded)
    }

    @Test func rejectsIssuedAtInFuture() {
        expectRefused(twoLinks { root, _ in root.iat = .integer(now + 120) }, "issued in the future (iat)")
    }

    @Test func rejectsExpNotAfterIat() {
        expectRefused(twoLinks { _, leaf in leaf.exp = .integer(now - 10) ; leaf.iat = .integer(now - 10) },
                      "exp must be after iat")
    }

    @Test func rejectsExpBeyondMaximumLifetime() {
        let tokens = twoLinks { root, leaf in
            root.exp = .integer(now + 2 * 86400)
            leaf.exp = .integer(now + 3600)
        }
        expectRefused(tokens, "exp is beyond the maximum delegation lifetime")
        #expect(walk(twoLinks { root, _ in root.exp = .integer(now + 86400) }).succeeded)
    }

    // MARK: Audience, key id, header

    @Test func rejectsAudienceNotContainingThisService() {
        expectRefused(twoLinks { _, leaf in leaf.aud = .string("https://other.example") }, "aud does not include this service")
        expectRefused(twoLinks { root, _ in root.aud = .array([.string("https://a.example"), .string("https://b.example")]) },
                      "aud does not include this service")
    }

    @Test func acceptsAudienceContainingThisService() {
        #expect(walk(twoLinks { root, leaf in
            root.aud = .array([.string("https://a.example"), .string(publicOrigin)])
            leaf.aud = .string(publicOrigin)
        }).succeeded)
    }

    @Test func rejectsKidThatIsNotIssuerVerificationMethod() {
        expectRefused(twoLinks { root, _ in root.kid = principal.did + "#key-2" }, "kid is not a verification method of the issuer")
        expectRefused(twoLinks { root, _ in root.kid = principal.did }, "kid is not a verification method of the issuer")
        expectRefused(twoLinks { _, leaf in leaf.kid = agent.keyID }, "kid is not a verification method of the issuer")
    }

    @Test func rejectsJWKHeaderInDelegation() {
        expectRefused(twoLinks { root, _ in root.extraHeader = [("jwk", .object(principal.publicJWK))] },
                      "header parameter 'jwk' is not allowed in a delegation")
    }

    @Test func rejectsKeyURLAndCertificateHeadersInDelegation() {
        for p in ["jku", "x5u", "x5c"] {
            expectRefused(twoLinks { _, leaf in leaf.extraHeader = [(p, .string("https://attacker.example/k"))] },
                          "header parameter '\(p)' is not allowed")
        }
    }

    @Test func rejectsWrongTyp() {
        expectRefused(twoLinks { root, _ in root.typ = .string("JWT") }, "typ must be delegation+jwt")
        expectRefused(twoLinks { _, leaf in leaf.typ = .string("dpop+jwt") }, "typ must be delegation+jwt")
        expectRefused(twoLinks { _, leaf in leaf.typ = nil }, "typ must be delegation+jwt")
    }

    @Test func rejectsDPoPProofPresentedAsDelegation() {
        let p = proof(agent, for: "x")
        expectRefused([p], "typ must be delegation+jwt")
    }
}
