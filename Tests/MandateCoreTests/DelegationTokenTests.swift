import Testing
@testable import MandateCore
import MandateCrypto

/// The claims of one delegation token (docs/credentials.md), parsed without the chain.
@Suite struct DelegationTokenTests {
    let principal = SigningKey.generate(.edDSA)
    let agent = SigningKey.generate(.edDSA)

    func parsed(_ link: Link) -> Result<DelegationToken, Reason> {
        DelegationToken.parse(bytes(link.token), limits: .init())
    }

    func expectRefused(_ link: Link, _ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let r = parsed(link).refused
        #expect(r?.text.contains(text) == true, "got \(String(describing: r))", sourceLocation: sourceLocation)
    }

    @Test func parsesEveryClaim() throws {
        var l = Link(principal, to: agent)
        l.scope = "read  write"
        l.nbf = .integer(now - 5)
        l.aud = .array([.string("https://a.example"), .string(publicOrigin)])
        l.prf = prfOf("parent")
        l.maxDepth = 2
        let t = try parsed(l).get()
        #expect(t.issuer == principal.did)
        #expect(t.subject == agent.did)
        #expect(t.keyID == principal.keyID)
        #expect(t.confirmedKeyThumbprint == agent.thumbprint)
        #expect(t.scopes == ["read", "write"])
        #expect(t.issuedAt == now - 10)
        #expect(t.expiresAt == now + 3600)
        #expect(t.notBefore == now - 5)
        #expect(t.audiences == ["https://a.example", publicOrigin])
        #expect(t.parentHash == prfOf("parent"))
        #expect(t.maxDepth == 2)
    }

    @Test func readsStringAudienceAsOneElement() throws {
        var l = Link(principal, to: agent)
        l.aud = .string(publicOrigin)
        #expect(try parsed(l).get().audiences == [publicOrigin])
    }

    @Test func mintedDelegationParses() throws {
        let token = Mint.delegation(key: principal, to: agent.did, jkt: agent.thumbprint, scope: "read", issuedAt: now,
                                    ttl: 60, parent: nil, audience: nil, maxDepth: 1, jti: "j1")
        let t = try DelegationToken.parse(bytes(token), limits: .init()).get()
        #expect(t.maxDepth == 1)
        #expect(t.parentHash == nil)
        #expect(t.jws.verify(with: principal.verificationKey).succeeded)
    }

    @Test func rejectsStringExp() {
        var l = Link(principal, to: agent)
        l.exp = .string(String(now + 3600))
        expectRefused(l, "NumericDate")
    }

    @Test func rejectsFractionalExp() {
        var l = Link(principal, to: agent)
        l.exp = .number(Double(now) + 3600.5)
        expectRefused(l, "NumericDate")
    }

    @Test func rejectsStringIat() {
        var l = Link(principal, to: agent)
        l.iat = .string(String(now))
        expectRefused(l, "NumericDate")
    }

    @Test func rejectsNegativeIat() {
        var l = Link(principal, to: agent)
        l.iat = .integer(-1)
        expectRefused(l, "NumericDate")
    }

    @Test func rejectsStringNbf() {
        var l = Link(principal, to: agent)
        l.nbf = .string("0")
        expectRefused(l, "nbf must be a NumericDate")
    }

    @Test func rejectsMissingIatOrExp() {
        var l = Link(principal, to: agent)
        l.iat = .null
        expectRefused(l, "NumericDate")
        let claims = JSONObject(members: [
            ("iss", .string(principal.did)), ("sub", .string(agent.did)),
            ("cnf", .object(JSONObject(members: [("jkt", .string(agent.thumbprint))]))),
            ("scope", .string("read")), ("iat", .integer(now)), ("jti", .string("j")),
        ])
        let token = principal.compactJWS(header: [("typ", .string("delegation+jwt")), ("kid", .string(principal.keyID))],
                                         claims: claims)
        #expect(DelegationToken.parse(bytes(token), limits: .init()).refused?.text == "iat and exp are required")
    }

    @Test func rejectsEmptyIssuerSubjectOrJTI() {
        var a = Link(principal, to: agent); a.iss = ""
        expectRefused(a, "iss must be a DID")
        var b = Link(principal, to: agent); b.sub = ""
        expectRefused(b, "sub must be a DID")
        var c = Link(principal, to: agent); c.jti = ""
        expectRefused(c, "jti is required")
    }

    @Test func rejectsConfirmationThatIsNotAThumbprint() {
        var l = Link(principal, to: agent)
        l.jkt = "short"
        expectRefused(l, "cnf.jkt")
        l.jkt = agent.thumbprint + "A"
        expectRefused(l, "cnf.jkt")
        l.jkt = String(agent.thumbprint.dropLast()) + "="
        expectRefused(l, "cnf.jkt")
    }

    @Test func rejectsNegativeOrNonIntegerMaxDepth() {
        var l = Link(principal, to: agent)
        l.maxDepth = -1
        expectRefused(l, "max_depth")
    }

    @Test func rejectsAudienceThatIsNotStrings() {
        var l = Link(principal, to: agent)
        l.aud = .integer(1)
        expectRefused(l, "aud must be")
        l.aud = .array([])
        expectRefused(l, "aud must be")
        l.aud = .array([.string(publicOrigin), .integer(2)])
        expectRefused(l, "aud must be")
    }

    @Test func rejectsMissingKid() {
        let token = principal.compactJWS(header: [("typ", .string("delegation+jwt"))],
                                         claims: JSONObject(members: [("iss", .string(principal.did))]))
        #expect(DelegationToken.parse(bytes(token), limits: .init()).refused?.text == "kid is required")
    }
}

@Test func rejectsIssuerOrSubjectThatIsNotADID() {
    #expect(DID.isWellFormed("did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"))
    #expect(DID.isWellFormed("did:web:example.com%3A3000:user:alice"))
    for bad in ["did:key:z6Mkx\r\nMandate-Principal: x", "did:key:zA,did:key:zB", "did:Key:z6Mk", "did:key:", "agent-7",
                "did::x", "did:key:a b"] {
        #expect(!DID.isWellFormed(bad), "\(bad)")
    }
}
