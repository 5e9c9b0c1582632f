import Testing
@testable import MandateCore
import MandateCrypto

/// Published vectors (/shared/vectors): RFC 8037 A, RFC 7638 3.1, RFC 7515 A.1/A.3, RFC 7519 6.1,
/// RFC 9449 §4–7, did:key and did:jwk.
@Suite struct VectorTests {
    // MARK: RFC 8037 A (Ed25519)

    @Test func rfc8037Ed25519SignatureVerifiesWithItsJWK() throws {
        let v = try Vectors.load("jose").object("rfc8037_a_ed25519")
        let key = try JWK.publicKey(v.object("jwk").jsonObject(removing: ["d"])).get()
        let parts = try v.text("jws").split(separator: ".", omittingEmptySubsequences: false)
        #expect(parts.count == 3)
        let signature = try #require(Base64URL.decode(parts[2].utf8))
        let input = Array(parts[0].utf8) + [UInt8(ascii: ".")] + Array(parts[1].utf8)
        #expect(key.algorithm == .edDSA)
        #expect(key.verify(signature: signature, input: input))
        #expect(Base64URL.decode(parts[1].utf8) == Array(try v.text("payload_text").utf8))
        var tampered = signature
        tampered[0] ^= 1
        #expect(!key.verify(signature: tampered, input: input))
    }

    @Test func rfc8037PayloadThatIsNotJSONIsRefusedAsClaims() throws {
        // Our JWSs carry JWT claims; a text payload cannot be a delegation or a proof.
        let jws = try Vectors.load("jose").object("rfc8037_a_ed25519").text("jws")
        guard case .badJSON("claims", _)? = refusal(parse(jws)) else {
            Issue.record("expected the claims to be refused as JSON")
            return
        }
    }

    @Test func rfc8037ThumbprintMatchesExpected() throws {
        let v = try Vectors.load("jose").object("rfc8037_a_ed25519")
        let key = try JWK.publicKey(v.object("jwk").jsonObject(removing: ["d"])).get()
        #expect(key.thumbprint == (try v.text("expected_thumbprint")))
    }

    @Test func rfc8037PrivateJWKReadsAsSigningKeyWithTheSameThumbprint() throws {
        let v = try Vectors.load("jose").object("rfc8037_a_ed25519")
        let signing = try SigningKey(jwk: v.object("jwk").jsonObject())
        #expect(signing.thumbprint == (try v.text("expected_thumbprint")))
        // RFC 8032 is deterministic: the same key signs the same bytes the same way.
        let parts = try v.text("jws").split(separator: ".")
        let input = Array(parts[0].utf8) + [UInt8(ascii: ".")] + Array(parts[1].utf8)
        #expect(Base64URL.encode(signing.sign(input)) == String(parts[2]))
        // The expanded signer (the load generator's) signs the same bytes.
        guard case .ed25519(let seed, _) = signing else { Issue.record("not an Ed25519 key"); return }
        #expect(Base64URL.encode(Ed25519.Signer(seed: seed).sign(input)) == String(parts[2]))
    }

    @Test func rfc8037DIDKeyIsTheDIDOfThatKey() throws {
        let v = try Vectors.load("jose").object("rfc8037_a_ed25519")
        let x = try #require(Base64URL.decode(v.object("jwk").text("x").utf8))
        #expect(DID.key(ed25519: x) == (try v.text("did_key")))
        let resolved = try DID.resolve(v.text("did_key")).get()
        #expect(resolved.key.thumbprint == (try v.text("expected_thumbprint")))
    }

    @Test func rfc8037JWKWithPrivateMemberIsRefusedAsPublicKey() throws {
        let jwk = try Vectors.load("jose").object("rfc8037_a_ed25519").object("jwk").jsonObject()
        #expect(JWK.publicKey(jwk).refused == .privateMembers)
    }

    // MARK: RFC 7638 3.1 (RSA)

    @Test func rfc7638RSAKeyIsRefusedAsUnsupportedKeyType() throws {
        let jwk = try Vectors.load("jose").object("rfc7638_3_1_rsa").object("jwk").jsonObject()
        #expect(JWK.publicKey(jwk).refused == .unsupportedKeyType)
    }

    // MARK: RFC 7515 A.3 (ES256)

    @Test func rfc7515ES256VerifiesWithItsJWK() throws {
        let v = try Vectors.load("jose").object("rfc7515_a3_es256")
        let key = try JWK.publicKey(v.object("jwk").jsonObject(removing: ["d"])).get()
        let jws = try parse(v.text("jws")).get()
        #expect(jws.algorithm == .es256)
        #expect(jws.claims["iss"]?.string == "joe")
        #expect(jws.claims["exp"]?.integer == 1_300_819_380)
        #expect(jws.verify(with: key).succeeded)
    }

    @Test func rfc7515ES256ThumbprintMatchesExpected() throws {
        let v = try Vectors.load("jose").object("rfc7515_a3_es256")
        let key = try JWK.publicKey(v.object("jwk").jsonObject(removing: ["d"])).get()
        #expect(key.thumbprint == (try v.text("expected_thumbprint")))
    }

    // MARK: Refused algorithms

    @Test func rfc7515HS256IsRefusedAsAlgorithmNotAllowed() throws {
        let jws = try Vectors.load("jose").object("rfc7515_a1_hs256").text("jws")
        #expect(refusal(parse(jws)) == .algorithmNotAllowed("HS256"))
    }

    @Test func rfc7519UnsecuredNoneIsRefusedAsAlgorithmNotAllowed() throws {
        let jwt = try Vectors.load("jose").object("rfc7519_6_1_unsecured").text("jwt")
        #expect(refusal(parse(jwt)) == .algorithmNotAllowed("none"))
    }

    // MARK: RFC 9449

    @Test(arguments: ["token_request_proof", "resource_proof"])
    func rfc9449ProofParsesAndItsSignatureVerifies(_ name: String) throws {
        let v = try Vectors.load("dpop").object(name)
        let p = try DPoPProof.parse(bytes(v.text("proof")), limits: .init()).get()
        #expect(p.verifySignature())
        #expect(p.htm == (try v.text("method")))
        #expect(p.iat == (v["iat"] as? Int).map(Int64.init))
    }

    @Test(arguments: ["token_request_proof", "resource_proof"])
    func rfc9449ProofKeyThumbprintIsExpectedJKT(_ name: String) throws {
        let all = try Vectors.load("dpop")
        let p = try DPoPProof.parse(bytes(all.object(name).text("proof")), limits: .init()).get()
        let expected = try all.text("expected_jkt")
        #expect(p.thumbprint == expected)
        #expect(try JWK.publicKey(all.object("jwk").jsonObject()).get().thumbprint == expected)
        #expect(DPoPRules.keyIsBound(p, jkt: expected) == nil)
    }

    @Test func rfc9449ResourceProofATHIsHashOfAccessToken() throws {
        let v = try Vectors.load("dpop").object("resource_proof")
        let p = try DPoPProof.parse(bytes(v.text("proof")), limits: .init()).get()
        let hash = SHA256.hash(Array(try v.text("access_token").utf8))
        #expect(Base64URL.encode(hash) == (try v.text("expected_ath")))
        #expect(p.ath == (try v.text("expected_ath")))
        #expect(DPoPRules.tokenHashMatches(p, tokenHash: hash) == nil)
        #expect(DPoPRules.tokenHashMatches(p, tokenHash: SHA256.hash(Array("other".utf8))) != nil)
    }

    @Test(arguments: ["token_request_proof", "resource_proof"])
    func rfc9449ProofPassesRequestRulesWithInjectedClock(_ name: String) throws {
        let v = try Vectors.load("dpop").object(name)
        let p = try DPoPProof.parse(bytes(v.text("proof")), limits: .init()).get()
        let iat = Int64(try #require(v["iat"] as? Int))
        let uri = try #require(HTU.normalize(v.text("url")))
        #expect(DPoPRules.methodMatches(p, method: try v.text("method")) == nil)
        #expect(DPoPRules.methodMatches(p, method: "PUT") != nil)
        #expect(DPoPRules.uriMatches(p, publicURI: uri) == nil)
        #expect(DPoPRules.freshness(p, now: iat, maxAge: 60, futureSkew: 5) == nil)
        #expect(DPoPRules.freshness(p, now: iat + 60, maxAge: 60, futureSkew: 5) == nil)
        #expect(DPoPRules.freshness(p, now: iat + 61, maxAge: 60, futureSkew: 5) != nil)
        #expect(DPoPRules.freshness(p, now: iat - 6, maxAge: 60, futureSkew: 5) != nil)
        // The wall clock (long after 2019) refuses it.
        #expect(DPoPRules.freshness(p, now: now, maxAge: 60, futureSkew: 5) != nil)
    }

    @Test func rfc9449HTUAcceptListMatchesNormalisedRequestURI() throws {
        let rules = try Vectors.load("dpop").object("htu_rules")
        let request = try rules.text("request").split(separator: " ")
        let target = try #require(HTU.normalize(String(request[1])))
        #expect(target == "https://api.example/x")
        for case let a as String in try rules.list("accept") {
            #expect(HTU.normalize(a) == target, "\(a) should match")
        }
    }

    @Test func rfc9449HTURejectListDiffersFromNormalisedRequestURI() throws {
        let rules = try Vectors.load("dpop").object("htu_rules")
        let target = try #require(HTU.normalize(String(rules.text("request").split(separator: " ")[1])))
        let rejects = try rules.list("reject").compactMap { $0 as? String }
        #expect(rejects.count == 3)
        for r in rejects {
            #expect(HTU.normalize(r) != target, "\(r) should not match")
        }
    }

    // MARK: did:key, did:jwk

    @Test func didKeyEd25519SeedGivesPublicKeyAndDID() throws {
        let cases = try Vectors.load("did").list("did_key_ed25519").compactMap { $0 as? [String: Any] }
        #expect(cases.count == 3)
        for c in cases {
            var pk: [UInt8]
            if let seed = c["seed_hex"] as? String {
                pk = Ed25519.publicKey(seed: hex(seed))
                if let expected = c["public_key_hex"] as? String { #expect(pk == hex(expected)) }
            } else {
                pk = hex(try c.text("public_key_hex"))
            }
            #expect(DID.key(ed25519: pk) == (try c.text("did")))
        }
    }

    @Test func didKeyEd25519ResolvesBackToItsKeyAndMethod() throws {
        for case let c as [String: Any] in try Vectors.load("did").list("did_key_ed25519") {
            let did = try c.text("did")
            let pk = try (c["public_key_hex"] as? String).map(hex) ?? Ed25519.publicKey(seed: hex(c.text("seed_hex")))
            let resolved = try DID.resolve(did).get()
            guard case .ed25519(let key) = resolved.key else {
                Issue.record("\(did) should be an Ed25519 key")
                continue
            }
            #expect(key == pk)
            #expect(resolved.methodID == did + "#" + did.dropFirst("did:key:".count))
        }
    }

    @Test func didKeyP256RoundTripsThroughCompressedPoint() throws {
        for _ in 0..<8 {
            let k = SigningKey.generate(.es256)
            #expect(k.did.hasPrefix("did:key:zDn"))
            let resolved = try DID.resolve(k.did).get()
            #expect(resolved.key.thumbprint == k.thumbprint)
            #expect(resolved.methodID == k.keyID)
        }
    }

    @Test func didJWKP256ResolvesWithMethodZero() throws {
        let v = try Vectors.load("did").object("did_jwk_p256")
        let did = try v.text("did")
        let resolved = try DID.resolve(did).get()
        #expect(resolved.methodID == did + "#0")
        guard case .p256(let key) = resolved.key else {
            Issue.record("did:jwk vector is a P-256 key")
            return
        }
        #expect(Base64URL.encode(key.x) == (try v.text("x")))
        #expect(Base64URL.encode(key.y) == (try v.text("y")))
    }

    @Test func didJWKWithPrivateMemberIsRefused() throws {
        let jwk = try Vectors.load("jose").object("rfc7515_a3_es256").object("jwk").jsonObject()
        let did = "did:jwk:" + Base64URL.encode(jwk.serialized())
        #expect(DID.resolve(did).refused == .key(.privateMembers))
    }

    @Test func didKeyWithUnknownMulticodecIsRefused() {
        // secp256k1 (0xe7) is a valid did:key, but not one we accept.
        let did = "did:key:z" + Base58.encode([0xe7, 0x01] + [UInt8](repeating: 2, count: 33))
        guard case .malformed? = DID.resolve(did).refused else {
            Issue.record("expected a malformed did:key refusal")
            return
        }
    }

    @Test func unsupportedDIDMethodIsRefused() {
        #expect(DID.resolve("did:web:example.com").refused == .unsupportedMethod)
    }
}
