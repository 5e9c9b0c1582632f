import Testing
@testable import MandateCore
import MandateCrypto
import MandateHTTP

/// RFC 9421: Appendix B.2.6 byte for byte, and the structured fields it rests on (RFC 8941).
@Suite struct MessageSignatureTests {
    func vectorRequest() throws -> (HTTPRequestHead, [String: Any]) {
        let v = try Vectors.load("http-message-signatures")
        let r = try v.object("test_request")
        let headers = try r.list("headers").compactMap { $0 as? [String] }.map { HTTPHeader($0[0], $0[1]) }
        return (HTTPRequestHead(method: try r.text("method"), target: try r.text("target"), headers: headers), v)
    }

    @Test func appendixB26SignatureBaseAndSignature() throws {
        let (head, v) = try vectorRequest()
        let b26 = try v.object("b_2_6_ed25519")
        let input = String(try b26.text("signature_input"))
        let sig = try b26.text("signature")
        let ms = try MessageSignature.parse(input: input, signature: sig).get()
        #expect(ms.label == "sig-b26" && ms.keyID == "test-key-ed25519" && ms.created == 1618884473)
        let base = try ms.base(head, scheme: "https", authority: "example.com").get()
        #expect(String(decoding: base, as: UTF8.self) == (try b26.text("signature_base")))
        let jwk = try v.object("keys").object("test-key-ed25519")
        let x = try #require(Base64URL.decode(try jwk.text("x").utf8))
        #expect(ms.verify(base, with: .ed25519(x)))
        // One byte changed in the base: no.
        var broken = base
        broken[broken.count - 2] ^= 1
        #expect(!ms.verify(broken, with: .ed25519(x)))
        // The same signature presented for another authority does not verify.
        #expect(!ms.verify(try ms.base(head, scheme: "https", authority: "evil.example").get(), with: .ed25519(x)))
    }

    @Test func contentDigestOfTheVectorBody() throws {
        let (head, v) = try vectorRequest()
        let d = try ContentDigest.parse(try #require(head.value("Content-Digest"))).get()
        #expect(d.algorithm == .sha512)
        let h = StreamingDigest(.sha512)
        let body = Array(try v.object("test_request").text("body").utf8)
        body.withUnsafeBytes { h.update(UnsafeRawBufferPointer(rebasing: $0[0 ..< 5])) }
        body.withUnsafeBytes { h.update(UnsafeRawBufferPointer(rebasing: $0[5...])) }
        #expect(h.finish() == d.digest)
    }

    @Test func hmacAndOtherAlgorithmsAreRefused() {
        let sig = "s=:" + String(repeating: "A", count: 86) + "==:"
        guard case .failure(let r) = MessageSignature.parse(input: #"s=("@method");created=1;keyid="k";alg="hmac-sha256""#, signature: sig) else {
            Issue.record("hmac accepted"); return
        }
        #expect(r.text.contains("not ed25519 or ecdsa-p256-sha256"))
    }

    @Test func structureIsStrict() {
        let sig = "a=:" + String(repeating: "A", count: 86) + "==:"
        let cases: [(String, String, String)] = [
            (#"a=("@method");created=1;keyid="k", b=("@path");created=1;keyid="k""#, sig, "exactly one signature"),
            (#"a=("@method");created=1;keyid="k""#, "b=:" + String(repeating: "A", count: 86) + "==:", "same label"),
            (#"a=("@method" "@method");created=1;keyid="k""#, sig, "covered twice"),
            (#"a=("@query-param";name="x");created=1;keyid="k""#, sig, "plain name"),
            (#"a=("@method");keyid="k""#, sig, "created is required"),
            (#"a=("@method");created=1"#, sig, "keyid is required"),
            (#"a=("@method");created=1;keyid="k";created=2"#, sig, "parameter created repeated"),
            (#"a=("@method");created=1;keyid="k""#, "a=:AAAA:", "64 bytes"),
            (#"a=("@method");created=1.5;keyid="k""#, sig, "only integers"),
            (#"a=("@method");created=1;keyid="k","#, sig, "trailing"),
        ]
        for (input, signature, text) in cases {
            switch MessageSignature.parse(input: input, signature: signature) {
            case .success: Issue.record("accepted: \(input)")
            case .failure(let r): #expect(r.text.contains(text), "\(input): \(r.text)")
            }
        }
    }
}
