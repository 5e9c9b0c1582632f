import Testing
@testable import MandateCore
import MandateCrypto

/// RFC 7515 §7.1 compact serialization under RFC 8725.
@Suite struct CompactJWSTests {
    let header = #"{"alg":"EdDSA"}"#
    let claims = #"{"iss":"joe"}"#

    @Test func parsesThreeSegmentsAndKeepsSigningInput() throws {
        let token = rawJWS(header, claims)
        let jws = try parse(token).get()
        #expect(jws.algorithm == .edDSA)
        #expect(jws.claims["iss"] == .string("joe"))
        #expect(String(decoding: jws.signingInput, as: UTF8.self) == b64(header) + "." + b64(claims))
    }

    @Test func rejectsJWEFiveSegments() {
        let jwe = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a2V5.aXY.Y2lwaGVy.dGFn"
        #expect(refusal(parse(jwe)) == .notCompactJWS)
    }

    @Test func rejectsTwoSegments() {
        #expect(refusal(parse(b64(header) + "." + b64(claims))) == .notCompactJWS)
        #expect(refusal(parse(b64(header))) == .notCompactJWS)
    }

    @Test func rejectsFourSegments() {
        #expect(refusal(parse(rawJWS(header, claims) + ".x")) == .notCompactJWS)
    }

    @Test func rejectsOversizedTokenBeforeDecoding() {
        // Not base64url at all: only the size check can name it.
        let huge = String(repeating: "!", count: 9000) + ".!.!"
        #expect(refusal(parse(huge)) == .tooLarge("token"))
        let limits = CompactJWS.Limits(token: 100, header: 2048)
        #expect(refusal(CompactJWS.parse(bytes(rawJWS(header, String(repeating: " ", count: 100) + claims)),
                                         limits: limits)) == .tooLarge("token"))
    }

    @Test func rejectsOversizedHeaderBeforeDecoding() {
        let token = String(repeating: "!", count: 3000) + "." + b64(claims) + ".AA"
        #expect(refusal(parse(token)) == .tooLarge("header"))
    }

    @Test func rejectsNonCanonicalBase64URLSegments() {
        let h = b64(header), c = b64(claims), s = Base64URL.encode([UInt8](repeating: 1, count: 64))
        for token in [h + "=." + c + "." + s, h + "." + c + "." + s + "==", h + " ." + c + "." + s,
                      h + "." + c.replacingOccurrences(of: "-", with: "+") + "+." + s, h + "." + c + "." + s + "\n"] {
            #expect(refusal(parse(token)) == .badBase64URL, "\(token)")
        }
        // A signature segment whose last character carries stray bits.
        var stray = Array(s)
        stray[stray.count - 1] = "B"
        #expect(refusal(parse(h + "." + c + "." + String(stray))) == .badBase64URL)
    }

    @Test func rejectsDuplicateHeaderMembers() {
        #expect(refusal(parse(rawJWS(#"{"alg":"EdDSA","alg":"ES256"}"#, claims)))
                == .badJSON("header", .duplicateMember("alg")))
    }

    @Test func rejectsDuplicateClaimNamesThatDifferOnlyByEscapes() {
        #expect(refusal(parse(rawJWS(header, #"{"a":1,"\u0061":2}"#))) == .badJSON("claims", .duplicateMember("a")))
    }

    @Test func rejectsInvalidUTF8InHeader() {
        let h = Base64URL.encode(Array(#"{"alg":"EdDSA","x":""#.utf8) + [0xfe] + Array(#""}"#.utf8))
        let token = h + "." + b64(claims) + "." + Base64URL.encode([UInt8](repeating: 1, count: 64))
        #expect(refusal(parse(token)) == .badJSON("header", .invalidUTF8))
    }

    @Test func rejectsLoneSurrogateInClaims() {
        #expect(refusal(parse(rawJWS(header, #"{"sub":"\udfff"}"#))) == .badJSON("claims", .invalidUTF8))
    }

    @Test func rejectsAnyCriticalHeader() {
        #expect(refusal(parse(rawJWS(#"{"alg":"EdDSA","crit":["exp"],"exp":1}"#, claims))) == .unknownCritical)
        #expect(refusal(parse(rawJWS(#"{"alg":"EdDSA","crit":[]}"#, claims))) == .unknownCritical)
    }

    @Test func rejectsAlgNone() {
        #expect(refusal(parse(rawJWS(#"{"alg":"none"}"#, claims, signature: []))) == .algorithmNotAllowed("none"))
    }

    @Test func rejectsAlgHS256() {
        #expect(refusal(parse(rawJWS(#"{"alg":"HS256"}"#, claims, signature: [UInt8](repeating: 1, count: 32))))
                == .algorithmNotAllowed("HS256"))
    }

    /// RS256 parses (an OAuth issuer's tokens use it) but verifies only with an RSA key, which
    /// only an issuer's JWKS can hold: never a DID's key, never a DPoP proof's jwk.
    @Test func rs256OnlyWithAnRSAKey() throws {
        let jws = try parse(rawJWS(#"{"alg":"RS256"}"#, claims, signature: [UInt8](repeating: 1, count: 256))).get()
        #expect(jws.algorithm == .rs256)
        guard case .failure(.algorithmKeyMismatch) = jws.verify(with: SigningKey.generate(.edDSA).verificationKey) else {
            Issue.record("RS256 verified with an Ed25519 key"); return
        }
        let rsa = JSONObject(members: [("kty", .string("RSA")), ("n", .string(Base64URL.encode([UInt8](repeating: 0xC1, count: 256)))),
                                       ("e", .string("AQAB"))])
        guard case .failure(.unsupportedKeyType) = JWK.publicKey(rsa) else { Issue.record("RSA JWK accepted"); return }
        guard case .success(.rsa) = JWK.publicKey(rsa, allowRSA: true) else { Issue.record("RSA JWK refused in a JWKS"); return }
        // A 1024-bit modulus is refused even there.
        let small = JSONObject(members: [("kty", .string("RSA")), ("n", .string(Base64URL.encode([UInt8](repeating: 0xC1, count: 128)))),
                                         ("e", .string("AQAB"))])
        guard case .failure = JWK.publicKey(small, allowRSA: true) else { Issue.record("1024-bit RSA accepted"); return }
        #expect(refusal(parse(rawJWS(#"{"alg":"RS256"}"#, claims, signature: [UInt8](repeating: 1, count: 64)))) == .badSignatureEncoding)
    }

    @Test func rejectsAlgorithmNamesThatDifferOnlyInCase() {
        #expect(refusal(parse(rawJWS(#"{"alg":"eddsa"}"#, claims))) == .algorithmNotAllowed("eddsa"))
        #expect(refusal(parse(rawJWS(#"{"alg":"es256"}"#, claims))) == .algorithmNotAllowed("es256"))
    }

    @Test func rejectsMissingOrNonStringAlg() {
        #expect(refusal(parse(rawJWS(#"{"typ":"JWT"}"#, claims))) == .missingHeader("alg"))
        #expect(refusal(parse(rawJWS(#"{"alg":1}"#, claims))) == .missingHeader("alg"))
    }

    @Test func rejectsEdDSAHeaderVerifiedWithP256Key() throws {
        let ed = SigningKey.generate(.edDSA), p = SigningKey.generate(.es256)
        let token = ed.compactJWS(header: [], claims: JSONObject(members: [("iss", .string("joe"))]))
        let jws = try parse(token).get()
        #expect(jws.verify(with: p.verificationKey).refused == .algorithmKeyMismatch)
        #expect(jws.verify(with: ed.verificationKey).succeeded)
    }

    @Test func rejectsES256HeaderVerifiedWithEd25519Key() throws {
        let ed = SigningKey.generate(.edDSA), p = SigningKey.generate(.es256)
        let jws = try parse(p.compactJWS(header: [], claims: JSONObject(members: []))).get()
        #expect(jws.verify(with: ed.verificationKey).refused == .algorithmKeyMismatch)
    }

    @Test func rejectsTamperedPayload() throws {
        let k = SigningKey.generate(.edDSA)
        let parts = k.compactJWS(header: [], claims: JSONObject(members: [("iss", .string("joe"))])).split(separator: ".")
        let forged = parts[0] + "." + b64(#"{"iss":"eve"}"#) + "." + parts[2]
        #expect(try parse(String(forged)).get().verify(with: k.verificationKey).refused == .badSignature)
    }

    @Test func rejectsPrivateJWKWhoseDDoesNotMatchItsPublicKey() {
        let a = SigningKey.generate(.es256), b = SigningKey.generate(.es256)
        let mixed = JSONObject(members: b.publicJWK.members + [("d", a.privateJWK["d"]!)])
        #expect(throws: Reason.self) { try SigningKey(jwk: mixed) }
        let c = SigningKey.generate(.edDSA), d = SigningKey.generate(.edDSA)
        #expect(throws: Reason.self) { try SigningKey(jwk: JSONObject(members: d.publicJWK.members + [("d", c.privateJWK["d"]!)])) }
        #expect(throws: Never.self) { try SigningKey(jwk: a.privateJWK) }
    }
}
