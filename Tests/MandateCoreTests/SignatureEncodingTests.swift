import Testing
@testable import MandateCore
import MandateCrypto

/// ECDSA raw r‖s (RFC 7518 §3.4) and Ed25519 (RFC 8032 §5.1.7) signatures with one encoding each.
@Suite struct SignatureEncodingTests {
    /// The P-256 group order n, big-endian.
    static let n = hex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551")
    /// The Ed25519 group order L, little-endian (2^252 + 27742317777372353535851937790883648493).
    static let l: [UInt8] = hex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")

    struct Signed {
        var key: SigningKey
        var input: [UInt8]
        var signature: [UInt8]
        var token: String
    }

    func signed(_ alg: JWSAlgorithm) -> Signed {
        let key = SigningKey.generate(alg)
        let token = key.compactJWS(header: [], claims: JSONObject(members: [("iss", .string("joe"))]))
        let parts = token.split(separator: ".")
        return Signed(key: key, input: Array((parts[0] + "." + parts[1]).utf8),
                      signature: Base64URL.decode(parts[2].utf8)!, token: token)
    }

    func replacingSignature(_ s: Signed, _ sig: [UInt8]) -> String {
        let parts = s.token.split(separator: ".")
        return parts[0] + "." + parts[1] + "." + Base64URL.encode(sig)
    }

    func verifies(_ s: Signed, _ sig: [UInt8]) -> Bool {
        guard case .success(let jws) = parse(replacingSignature(s, sig)) else { return false }
        return jws.verify(with: s.key.verificationKey).succeeded
    }

    @Test func validSignaturesVerify() {
        let e = signed(.es256), d = signed(.edDSA)
        #expect(verifies(e, e.signature))
        #expect(verifies(d, d.signature))
    }

    @Test func rejectsECDSAZeroR() {
        let s = signed(.es256)
        #expect(!verifies(s, [UInt8](repeating: 0, count: 32) + s.signature[32...]))
    }

    @Test func rejectsECDSAZeroS() {
        let s = signed(.es256)
        #expect(!verifies(s, Array(s.signature[..<32]) + [UInt8](repeating: 0, count: 32)))
    }

    @Test func rejectsECDSAAllZeroSignature() {
        let s = signed(.es256)
        #expect(!verifies(s, [UInt8](repeating: 0, count: 64)))
    }

    @Test func rejectsECDSASAtLeastGroupOrder() {
        let s = signed(.es256)
        #expect(!verifies(s, Array(s.signature[..<32]) + Self.n))
        #expect(!verifies(s, Array(s.signature[..<32]) + [UInt8](repeating: 0xff, count: 32)))
    }

    @Test func rejectsECDSARAtLeastGroupOrder() {
        let s = signed(.es256)
        #expect(!verifies(s, Self.n + s.signature[32...]))
    }

    @Test func rejectsSignatureOfWrongLength() {
        for alg in [JWSAlgorithm.es256, .edDSA] {
            let s = signed(alg)
            #expect(refusal(parse(replacingSignature(s, Array(s.signature.dropLast())))) == .badSignatureEncoding)
            #expect(refusal(parse(replacingSignature(s, s.signature + [0]))) == .badSignatureEncoding)
            #expect(refusal(parse(replacingSignature(s, []))) == .badSignatureEncoding)
            #expect(!s.key.verificationKey.verify(signature: s.signature.dropLast(), input: s.input))
        }
    }

    @Test func rejectsECDSADEREncodedSignature() {
        // 70-odd bytes of ASN.1 are not raw r‖s.
        let s = signed(.es256)
        var der: [UInt8] = [0x30, 0x44, 0x02, 0x20] + s.signature[..<32] + [0x02, 0x20] + s.signature[32...]
        #expect(refusal(parse(replacingSignature(s, der))) == .badSignatureEncoding)
        der.removeAll()
    }

    @Test func rejectsEd25519NonCanonicalS() {
        let s = signed(.edDSA)
        // S + L is the same scalar mod L; RFC 8032 §5.1.7 requires S < L.
        var sig = s.signature
        var carry = 0
        for i in 0..<32 {
            let v = Int(sig[32 + i]) + Int(Self.l[i]) + carry
            sig[32 + i] = UInt8(v & 0xff)
            carry = v >> 8
        }
        #expect(carry == 0)
        #expect(sig != s.signature)
        #expect(!verifies(s, sig))
        #expect(!Ed25519.verify(signature: sig, message: s.input, publicKey: s.key.verificationKey.ed25519Bytes))
    }

    @Test func rejectsEd25519SignatureWithFlippedBit() {
        let s = signed(.edDSA)
        var sig = s.signature
        sig[10] ^= 0x04
        #expect(!verifies(s, sig))
    }
}

extension VerificationKey {
    var ed25519Bytes: [UInt8] {
        if case .ed25519(let b) = self { return b }
        return []
    }
}
