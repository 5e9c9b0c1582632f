import Testing
@testable import MandateCore
import MandateCrypto
import MandateHTTP

/// RFC 8705 §3: a leaf bound to a client certificate (cnf x5t#S256) is presented with the Bearer
/// scheme over mutual TLS, and only over the certificate it names, whose key is the agent's.
@Suite struct CertificateBindingTests {
    let principal = SigningKey.generate(.edDSA)
    let agent = SigningKey.generate(.edDSA)
    /// Stands for SHA-256 of the agent's certificate DER.
    let certHash = SHA256.hash(Array("agent certificate DER".utf8))

    var certificate: ClientCertificate { ClientCertificate(thumbprint: Base64URL.encode(certHash), keyThumbprint: agent.thumbprint) }

    func leaf(x5t: String? = nil) -> String {
        var l = Link(principal, to: agent)
        l.x5t = x5t ?? Base64URL.encode(certHash)
        return l.token
    }

    func verify(_ h: HTTPRequestHead, _ cert: ClientCertificate?) throws -> Result<Verifier.Verified, Verifier.Refusal> {
        try Verifier(config: config(principals: [principal])).verify(h, certificate: cert, now: now)
    }

    func expectRefused(_ r: Result<Verifier.Verified, Verifier.Refusal>, _ code: Denial.Code, _ text: String,
                       sourceLocation: SourceLocation = #_sourceLocation) {
        guard let d = r.denial else { Issue.record("admitted", sourceLocation: sourceLocation); return }
        #expect(d.code == code && d.description.contains(text), "\(d.code.rawValue): \(d.description)",
                sourceLocation: sourceLocation)
    }

    @Test func boundLeafOverItsCertificateIsAdmittedWithoutAProof() throws {
        let v = try verify(head(leaf: leaf(), proof: nil, scheme: "Bearer"), certificate).get()
        #expect(v.chain.agent == agent.did)
        #expect(v.chain.certificateThumbprint == Base64URL.encode(certHash))
        #expect(v.chain.certificateKeys == [agent.thumbprint])
    }

    @Test func otherCertificateIsRefused() throws {
        var other = certificate
        other.thumbprint = Base64URL.encode(SHA256.hash(Array("another certificate".utf8)))
        expectRefused(try verify(head(leaf: leaf(), proof: nil, scheme: "Bearer"), other), .invalidToken,
                      "bound to another client certificate")
    }

    @Test func certificateWhoseKeyIsNotTheAgentsIsRefused() throws {
        var c = certificate
        c.keyThumbprint = SigningKey.generate(.edDSA).thumbprint
        expectRefused(try verify(head(leaf: leaf(), proof: nil, scheme: "Bearer"), c), .invalidToken, "not the key of the agent")
        c.keyThumbprint = nil  // an RSA certificate, say
        expectRefused(try verify(head(leaf: leaf(), proof: nil, scheme: "Bearer"), c), .invalidToken, "not the key of the agent")
    }

    @Test func bearerWithoutClientCertificateIsRefusedBeforeTheChain() throws {
        expectRefused(try verify(head(leaf: leaf(), proof: nil, scheme: "Bearer"), nil), .invalidToken, "mutual TLS")
        // Not even a well-formed token is looked at.
        expectRefused(try verify(head(leaf: "junk", proof: nil, scheme: "Bearer"), nil), .invalidToken, "mutual TLS")
    }

    /// RFC 9449 §7.2: a DPoP-bound leaf never passes as a Bearer token, even over mutual TLS.
    @Test func dpopBoundLeafAsBearerIsRefused() throws {
        let jktLeaf = Link(principal, to: agent).token
        expectRefused(try verify(head(leaf: jktLeaf, proof: nil, scheme: "Bearer"), certificate), .invalidToken, "DPoP-bound")
    }

    @Test func boundLeafWithTheDPoPSchemeIsRefused() throws {
        let l = leaf()
        let h = head(leaf: l, proof: proof(agent, for: l), scheme: "DPoP")
        expectRefused(try verify(h, certificate), .invalidToken, "Authorization: Bearer over mutual TLS")
    }

    @Test func bearerWithAProofIsRefused() throws {
        let l = leaf()
        expectRefused(try verify(head(leaf: l, proof: proof(agent, for: l), scheme: "Bearer"), certificate),
                      .invalidToken, "Bearer scheme")
    }

    @Test func boundLinkCannotDelegateFurther() throws {
        let parent = leaf()
        let child = SigningKey.generate(.edDSA)
        let h = head(leaf: Link(agent, to: child, parent: parent).token, ancestors: [parent], proof: nil, scheme: "Bearer")
        expectRefused(try verify(h, certificate), .invalidToken, "cannot delegate further")
    }

    @Test func cnfHoldsExactlyOneConfirmation() {
        var both = Link(principal, to: agent)
        both.cnf = JSONObject(members: [("jkt", .string(agent.thumbprint)), ("x5t#S256", .string(Base64URL.encode(certHash)))])
        var neither = Link(principal, to: agent)
        neither.cnf = JSONObject(members: [])
        for l in [both, neither] {
            guard case .failure(let r) = DelegationToken.parse(bytes(l.token), limits: .init()) else {
                Issue.record("parsed"); continue
            }
            #expect(r.text == "cnf must hold exactly one of jkt and x5t#S256")
        }
        var short = Link(principal, to: agent)
        short.x5t = "abc"
        guard case .failure(let r) = DelegationToken.parse(bytes(short.token), limits: .init()) else { Issue.record("parsed"); return }
        #expect(r.text.contains("x5t#S256"))
    }

    @Test func certificateKeyThumbprintFromHandshakeBytes() throws {
        // Ed25519 raw key, and a P-256 point uncompressed: the same RFC 7638 thumbprints as the JWKs.
        let ed = SigningKey.generate(.edDSA), p = SigningKey.generate(.es256)
        func member(_ k: SigningKey, _ name: String) throws -> [UInt8] {
            let text = try #require(k.publicJWK[name]?.string)
            return try #require(Base64URL.decode(text.utf8))
        }
        let edRaw = try member(ed, "x"), px = try member(p, "x"), py = try member(p, "y")
        #expect(ClientCertificate(derSHA256: certHash, publicKey: edRaw).keyThumbprint == ed.thumbprint)
        #expect(ClientCertificate(derSHA256: certHash, publicKey: [4] + px + py).keyThumbprint == p.thumbprint)
        #expect(ClientCertificate(derSHA256: certHash, publicKey: []).keyThumbprint == nil)
        #expect(ClientCertificate(derSHA256: certHash, publicKey: []).thumbprint == Base64URL.encode(certHash))
    }
}
