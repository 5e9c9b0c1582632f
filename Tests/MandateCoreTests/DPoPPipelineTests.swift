import Testing
@testable import MandateCore
import MandateCrypto
import MandateHTTP

/// RFC 9449 §4.3 and the delegation binding, through the whole pipeline:
/// `Verifier(config:).verify(head, now:)`.
@Suite struct DPoPPipelineTests {
    let chain = Chain([.edDSA])

    func verifier(_ c: Chain? = nil, _ edit: (inout ProxyConfig) -> Void = { _ in }) throws -> Verifier {
        var cfg = config(principals: [(c ?? chain).principal])
        edit(&cfg)
        return try Verifier(config: cfg)
    }

    func expectDenied(_ r: Result<Verifier.Verified, Verifier.Refusal>, _ code: Denial.Code, _ status: Int,
                      _ text: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
        guard let d = r.denial else {
            Issue.record("expected \(code.rawValue), but the request was admitted", sourceLocation: sourceLocation)
            return
        }
        #expect(d.code == code, "\(d.description)", sourceLocation: sourceLocation)
        #expect(d.status == status, sourceLocation: sourceLocation)
        if let text {
            #expect(d.description.contains(text), "got '\(d.description)'", sourceLocation: sourceLocation)
        }
        if status == 401 { #expect(d.wwwAuthenticate?.hasPrefix("DPoP ") == true, sourceLocation: sourceLocation) }
    }

    /// A proof built claim by claim, to break exactly one rule.
    func handProof(_ key: SigningKey, header: [(String, JSONValue)]? = nil, drop: Set<String> = [],
                   set: [(String, JSONValue)] = [], token: String? = nil) -> String {
        var claims: [(String, JSONValue)] = [
            ("jti", .string(Mint.newID())), ("htm", .string("GET")), ("htu", .string(publicOrigin + "/orders")),
            ("iat", .integer(now)), ("ath", .string(Base64URL.encode(SHA256.hash(Array((token ?? chain.leaf).utf8))))),
        ]
        claims = claims.filter { !drop.contains($0.0) }
        for (n, v) in set {
            if let i = claims.firstIndex(where: { $0.0 == n }) { claims[i].1 = v } else { claims.append((n, v)) }
        }
        return key.compactJWS(header: header ?? [("typ", .string("dpop+jwt")), ("jwk", .object(key.publicJWK))],
                              claims: JSONObject(members: claims))
    }

    func send(_ v: Verifier, proof p: String, at t: Int64 = now, _ method: String = "GET",
              _ target: String = "/orders") -> Result<Verifier.Verified, Verifier.Refusal> {
        v.verify(head(method, target, leaf: chain.leaf, ancestors: chain.ancestors, proof: p), now: t)
    }

    // MARK: Admitted

    @Test func acceptsValidRequestWithEd25519Proof() throws {
        let c = Chain([.edDSA], proof: .edDSA)
        let r = try verifier(c).verify(request(c), now: now)
        let v = try r.get()
        #expect(v.chain.principal == c.principal.did)
        #expect(v.chain.agent == c.proofKey.did)
        #expect(v.path == "/orders")
    }

    @Test func acceptsValidRequestWithES256Proof() throws {
        let c = Chain([.edDSA], proof: .es256)
        #expect(try verifier(c).verify(request(c), now: now).accepted)
    }

    @Test func acceptsOneLinkChainWithoutAgentDelegation() throws {
        let c = Chain([.es256], proof: .edDSA)
        let h = request(c)
        #expect(h.value("Agent-Delegation") == nil)
        #expect(try verifier(c).verify(h, now: now).accepted)
    }

    @Test func acceptsThreeLinkChainEd25519ES256Ed25519() throws {
        let c = Chain([.edDSA, .es256, .edDSA], proof: .es256)
        let h = request(c)
        #expect(h.value("Agent-Delegation") == c.tokens[0] + ", " + c.tokens[1])
        let v = try verifier(c).verify(h, now: now).get()
        #expect(v.chain.dids == c.keys.map(\.did))
        #expect(v.facts.chain == c.keys.map(\.did))
    }

    @Test func acceptsAgentDelegationWithoutSpaces() throws {
        let c = Chain([.edDSA, .edDSA, .edDSA])
        let h = head(leaf: c.leaf, proof: proof(c.proofKey, for: c.leaf),
                     extra: [HTTPHeader("Agent-Delegation", c.ancestors.joined(separator: ","))])
        #expect(try verifier(c).verify(h, now: now).accepted)
    }

    @Test func acceptsLowerCaseDPoPScheme() throws {
        let h = head(leaf: chain.leaf, proof: proof(chain.proofKey, for: chain.leaf), scheme: "dpop")
        #expect(try verifier().verify(h, now: now).accepted)
    }

    @Test func acceptsHTUEquivalentAfterNormalisation() throws {
        let v = try verifier()
        let p = Mint.proof(key: chain.proofKey, method: "GET", htu: "HTTPS://Proxy.Example:443/%6Frders?q=1#f",
                           accessToken: chain.leaf, issuedAt: now, jti: Mint.newID())
        #expect(send(v, proof: p, "GET", "/orders?x=1").accepted)
    }

    @Test func acceptsHTUVectorAcceptListForPublicOrigin() throws {
        let rules = try Vectors.load("dpop").object("htu_rules")
        let v = try verifier { $0.publicOrigin = "https://api.example" }
        for case let htu as String in try rules.list("accept") {
            let p = Mint.proof(key: chain.proofKey, method: "GET", htu: htu, accessToken: chain.leaf, issuedAt: now,
                               jti: Mint.newID())
            #expect(send(v, proof: p, "GET", "/x?y=1").accepted, "\(htu)")
        }
        for case let htu as String in try rules.list("reject") {
            let p = Mint.proof(key: chain.proofKey, method: "GET", htu: htu, accessToken: chain.leaf, issuedAt: now,
                               jti: Mint.newID())
            expectDenied(send(v, proof: p, "GET", "/x?y=1"), .invalidDPoPProof, 401, "htu")
        }
    }

    @Test func verifierRefusesPublicOriginWithPath() {
        for origin in ["https://proxy.example/v1/", "https://proxy.example/v1", "proxy.example"] {
            var c = config(principals: [chain.principal])
            c.publicOrigin = origin
            #expect(throws: Reason.self, "\(origin)") { try Verifier(config: c) }
        }
    }

    // MARK: The credential

    @Test func rejectsMissingDPoPProof() throws {
        expectDenied(try verifier().verify(head(leaf: chain.leaf, proof: nil), now: now), .invalidDPoPProof, 401,
                     "missing DPoP proof")
    }

    @Test func rejectsBearerScheme() throws {
        let h = head(leaf: chain.leaf, proof: proof(chain.proofKey, for: chain.leaf), scheme: "Bearer")
        expectDenied(try verifier().verify(h, now: now), .invalidToken, 401, "Bearer")
    }

    @Test func rejectsMissingAuthorization() throws {
        let h = HTTPRequestHead(method: "GET", target: "/orders",
                                headers: [HTTPHeader("DPoP", proof(chain.proofKey, for: chain.leaf))])
        expectDenied(try verifier().verify(h, now: now), .missingCredential, 401, "needs Authorization: DPoP")
    }

    @Test func rejectsEmptyAgentDelegationElement() throws {
        let c = Chain([.edDSA, .edDSA])
        let h = head(leaf: c.leaf, proof: proof(c.proofKey, for: c.leaf),
                     extra: [HTTPHeader("Agent-Delegation", c.tokens[0] + ", ,")])
        expectDenied(try verifier(c).verify(h, now: now), .invalidToken, 401, "empty element")
    }

    // MARK: The proof itself (§4.3 1–7)

    @Test func rejectsProofWithWrongTyp() throws {
        let p = handProof(chain.proofKey, header: [("typ", .string("jwt")), ("jwk", .object(chain.proofKey.publicJWK))])
        expectDenied(send(try verifier(), proof: p), .invalidDPoPProof, 401, "typ must be dpop+jwt")
        let q = handProof(chain.proofKey, header: [("jwk", .object(chain.proofKey.publicJWK))])
        expectDenied(send(try verifier(), proof: q), .invalidDPoPProof, 401, "typ must be dpop+jwt")
    }

    @Test func rejectsProofWithoutJWK() throws {
        let p = handProof(chain.proofKey, header: [("typ", .string("dpop+jwt"))])
        expectDenied(send(try verifier(), proof: p), .invalidDPoPProof, 401, "jwk header is required")
    }

    @Test func rejectsPrivateKeyInProofJWK() throws {
        for alg in [JWSAlgorithm.edDSA, .es256] {
            let c = Chain([.edDSA], proof: alg)
            let p = handProof(c.proofKey, header: [("typ", .string("dpop+jwt")), ("jwk", .object(c.proofKey.privateJWK))],
                              token: c.leaf)
            let h = head(leaf: c.leaf, proof: p)
            expectDenied(try verifier(c).verify(h, now: now), .invalidDPoPProof, 401, "private key")
        }
    }

    @Test func rejectsProofJWKWithAlgDifferentFromHeader() throws {
        let jwk = JSONObject(members: chain.proofKey.publicJWK.members + [("alg", .string("ES256"))])
        let p = handProof(chain.proofKey, header: [("typ", .string("dpop+jwt")), ("jwk", .object(jwk))])
        expectDenied(send(try verifier(), proof: p), .invalidDPoPProof, 401, "jwk")
    }

    @Test func rejectsProofSignatureThatDoesNotVerifyWithItsJWK() throws {
        let forger = SigningKey.generate(.edDSA)
        let p = handProof(forger, header: [("typ", .string("dpop+jwt")), ("jwk", .object(chain.proofKey.publicJWK))])
        expectDenied(send(try verifier(), proof: p), .invalidDPoPProof, 401, "signature does not verify")
    }

    @Test func rejectsProofWithStringIat() throws {
        let p = handProof(chain.proofKey, set: [("iat", .string(String(now)))])
        expectDenied(send(try verifier(), proof: p), .invalidDPoPProof, 401, "iat")
    }

    @Test func rejectsProofWithoutJTI() throws {
        let p = handProof(chain.proofKey, drop: ["jti"])
        expectDenied(send(try verifier(), proof: p), .invalidDPoPProof, 401, "jti is required")
    }

    // MARK: The proof and the request (§4.3 8–11)

    @Test func rejectsHTMMismatch() throws {
        let p = proof(chain.proofKey, "POST", for: chain.leaf)
        expectDenied(send(try verifier(), proof: p), .invalidDPoPProof, 401, "htm does not match")
        let q = proof(chain.proofKey, "get", for: chain.leaf)
        expectDenied(send(try verifier(), proof: q), .invalidDPoPProof, 401, "htm does not match")
    }

    @Test func rejectsHTUMismatch() throws {
        let p = proof(chain.proofKey, "GET", "/other", for: chain.leaf)
        expectDenied(send(try verifier(), proof: p), .invalidDPoPProof, 401, "htu does not match")
        let q = proof(chain.proofKey, "GET", "/orders", for: chain.leaf, origin: "https://proxy.example:8443")
        expectDenied(send(try verifier(), proof: q), .invalidDPoPProof, 401, "htu does not match")
    }

    @Test func rejectsHTUNamingUpstreamInsteadOfPublicOrigin() throws {
        let p = proof(chain.proofKey, for: chain.leaf, origin: upstreamOrigin)
        expectDenied(send(try verifier(), proof: p), .invalidDPoPProof, 401, "htu does not match")
    }

    @Test func rejectsHTUThatIsNotAnAbsoluteHTTPURI() throws {
        let p = handProof(chain.proofKey, set: [("htu", .string("/orders"))])
        expectDenied(send(try verifier(), proof: p), .invalidDPoPProof, 401, "htu")
    }

    @Test func rejectsIatTooOld() throws {
        let v = try verifier()
        expectDenied(send(v, proof: proof(chain.proofKey, for: chain.leaf, iat: now - 61)), .invalidDPoPProof, 401,
                     "too old")
        #expect(send(v, proof: proof(chain.proofKey, for: chain.leaf, iat: now - 60)).accepted)
    }

    @Test func rejectsIatTooFarInFuture() throws {
        let v = try verifier()
        expectDenied(send(v, proof: proof(chain.proofKey, for: chain.leaf, iat: now + 6)), .invalidDPoPProof, 401,
                     "in the future")
        #expect(send(v, proof: proof(chain.proofKey, for: chain.leaf, iat: now + 5)).accepted)
    }

    @Test func rejectsReplayOfFutureDatedProofLaterInItsWindow() throws {
        let v = try verifier()
        let p = proof(chain.proofKey, for: chain.leaf, iat: now + 5)
        #expect(send(v, proof: p, at: now).accepted)
        for later in [now + 30, now + 60, now + 65] {
            expectDenied(send(v, proof: p, at: later), .invalidDPoPProof, 401, "already been used")
        }
        // Once past its window it is refused as old, not admitted.
        expectDenied(send(v, proof: p, at: now + 66), .invalidDPoPProof, 401, "too old")
    }

    @Test func rejectsJTIReplay() throws {
        let v = try verifier()
        let p = proof(chain.proofKey, for: chain.leaf)
        #expect(send(v, proof: p).accepted)
        expectDenied(send(v, proof: p), .invalidDPoPProof, 401, "already been used")
        expectDenied(send(v, proof: p, at: now + 59), .invalidDPoPProof, 401, "already been used")
    }

    @Test func rejectsSameJTIInAnotherProofFromTheSameKey() throws {
        let v = try verifier()
        #expect(send(v, proof: proof(chain.proofKey, for: chain.leaf, jti: "once")).accepted)
        expectDenied(send(v, proof: proof(chain.proofKey, "POST", for: chain.leaf, jti: "once"), "POST"),
                     .invalidDPoPProof, 401, "already been used")
    }

    @Test func refusesWhenReplayCacheIsFull() throws {
        let v = try Verifier(config: config(principals: [chain.principal]), replay: MemoryReplayCache(capacity: 1, shards: 1))
        #expect(send(v, proof: proof(chain.proofKey, for: chain.leaf)).accepted)
        expectDenied(send(v, proof: proof(chain.proofKey, for: chain.leaf)), .temporarilyUnavailable, 503)
    }

    // MARK: The proof and the token (§4.3 12)

    @Test func rejectsATHMismatch() throws {
        let p = proof(chain.proofKey, for: chain.leaf + "x")
        expectDenied(send(try verifier(), proof: p), .invalidDPoPProof, 401, "ath does not match")
    }

    @Test func rejectsMissingATH() throws {
        let p = handProof(chain.proofKey, drop: ["ath"])
        expectDenied(send(try verifier(), proof: p), .invalidDPoPProof, 401, "ath is required")
    }

    @Test func rejectsATHOfAncestorInsteadOfLeaf() throws {
        let c = Chain([.edDSA, .edDSA])
        let h = head(leaf: c.leaf, ancestors: c.ancestors, proof: proof(c.proofKey, for: c.tokens[0]))
        expectDenied(try verifier(c).verify(h, now: now), .invalidDPoPProof, 401, "ath does not match")
    }

    @Test func rejectsProofKeyThatIsNotLeafConfirmationKey() throws {
        for alg in [JWSAlgorithm.edDSA, .es256] {
            let p = proof(SigningKey.generate(alg), for: chain.leaf)
            expectDenied(send(try verifier(), proof: p), .invalidDPoPProof, 401, "cnf.jkt")
        }
    }

    @Test func rejectsProofByIntermediateKeyOfThreeLinkChain() throws {
        let c = Chain([.edDSA, .es256, .edDSA])
        let h = head(leaf: c.leaf, ancestors: c.ancestors, proof: proof(c.keys[2], for: c.leaf))
        expectDenied(try verifier(c).verify(h, now: now), .invalidDPoPProof, 401, "cnf.jkt")
    }

    // MARK: The chain cache

    @Test func cachedChainIsNotAcceptedWithDifferentAgentDelegation() throws {
        let c = Chain([.edDSA, .edDSA])
        let v = try verifier(c)
        #expect(v.verify(request(c), now: now).accepted)
        // Same leaf, no ancestors: the walker must see a leaf that claims a parent.
        let bare = head(leaf: c.leaf, proof: proof(c.proofKey, for: c.leaf))
        expectDenied(v.verify(bare, now: now), .invalidToken, 401, "prf")
        // Same leaf under a root from a principal who is not enrolled.
        let stranger = Chain([.edDSA, .edDSA])
        let forged = head(leaf: c.leaf, ancestors: [stranger.tokens[0]], proof: proof(c.proofKey, for: c.leaf))
        expectDenied(v.verify(forged, now: now), .invalidToken, 401)
        // The original text still answers.
        #expect(v.verify(request(c), now: now).accepted)
    }

    @Test func cachedChainIsRefusedAfterExpiry() throws {
        let c = Chain([.edDSA], ttl: 100)  // iat now-10, exp now+90
        let v = try verifier(c)
        #expect(v.verify(request(c), now: now).accepted)
        #expect(v.verify(request(c, iat: now + 119), now: now + 119).accepted)  // within the skew
        let late = v.verify(request(c, iat: now + 120), now: now + 120)
        expectDenied(late, .invalidToken, 401, "expired")
        #expect(late.denial?.description == "delegation expired")  // answered from the cache
    }

    @Test func uncachedExpiredChainIsRefusedByWalker() throws {
        let c = Chain([.edDSA], ttl: 100)
        expectDenied(try verifier(c).verify(request(c, iat: now + 120), now: now + 120), .invalidToken, 401, "expired")
    }

    // MARK: Forwarding

    @Test func admittedRequestForwardsNormalisedTargetWithoutCredentials() throws {
        let c = Chain([.edDSA, .edDSA])
        let v = try verifier(c)
        let h = head("GET", "/a/./b/../orders?x=%2F", leaf: c.leaf, ancestors: c.ancestors,
                     proof: proof(c.proofKey, "GET", "/a/orders", for: c.leaf))
        guard case .forward(let plan) = v.admit(h, peer: Peer(address: "203.0.113.5"), requestID: "r1", now: now) else {
            Issue.record("expected the request to be forwarded")
            return
        }
        #expect(plan.target == "/a/orders?x=%2F")
        let names = Set(plan.headers.map { $0.name.lowercased() })
        #expect(!names.contains("authorization") && !names.contains("dpop") && !names.contains("agent-delegation"))
        #expect(plan.headers.first { $0.name == "Mandate-Principal" }?.value == c.principal.did)
        #expect(plan.facts.route == "/")
    }
}
