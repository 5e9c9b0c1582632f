import Testing
@testable import MandateCore
import MandateCrypto

/// A partner organisation's root delegation speaks for one of its people, within its max_scope.
@Suite struct OrganizationTests {
    let partner = SigningKey.generate(.edDSA)
    let alice = SigningKey.generate(.edDSA)
    let agent = SigningKey.generate(.es256)

    func verifier(principals: [String] = ["*@partner.example"], maxScope: [String] = ["invoices:read", "echo"],
                  routes: [ProxyConfig.Route] = [ProxyConfig.Route(prefix: "/", effect: .allow)]) throws -> Verifier {
        var c = config(principals: [alice], routes: routes)
        c.organizations = [ProxyConfig.Organization(did: partner.did, name: "Partner", principals: principals, maxScope: maxScope)]
        return try Verifier(config: c)
    }

    func rootFor(_ person: String?, scope: String = "invoices:read", issuer: SigningKey? = nil) -> String {
        var l = Link(issuer ?? partner, to: agent)
        l.scope = scope
        var claims = l
        claims.extraClaims = person.map { [("principal", .object(JSONObject(members: [("sub", .string($0))])))] } ?? []
        return claims.token
    }

    func send(_ v: Verifier, _ leaf: String, ancestors: [String] = []) -> Result<Verifier.Verified, Verifier.Refusal> {
        v.verify(head(leaf: leaf, ancestors: ancestors, proof: proof(agent, for: leaf)), now: now)
    }

    @Test func rootFromAnOrganizationNamesThePerson() throws {
        let v = try send(try verifier(), rootFor("bob@partner.example")).get()
        #expect(v.chain.principal == "bob@partner.example")
        #expect(v.chain.organization == partner.did)
        #expect(v.chain.dids.first == partner.did)
        #expect(v.facts.organization == partner.did && v.facts.principal == "bob@partner.example")
    }

    @Test func organizationLimitsAreEnforced() throws {
        let v = try verifier()
        let cases: [(String, String)] = [
            (rootFor(nil), "must name its principal"),
            (rootFor("mallory@elsewhere.example"), "may not speak for principal mallory@elsewhere.example"),
            (rootFor("bob@partner.example", scope: "invoices:read payments:write"), "beyond the organization's max_scope"),
            (rootFor("did:key:z6Mkfake"), "principal must be an object whose sub is an identifier"),
            (rootFor("bob\r\n@partner.example"), "principal must be an object whose sub is an identifier"),
            // An enrolled principal cannot speak for someone else.
            (rootFor("bob@partner.example", issuer: alice), "does not name another principal"),
        ]
        for (leaf, text) in cases {
            #expect(send(v, leaf).denial?.description.contains(text) == true, "\(send(v, leaf).denial?.description ?? "admitted")")
        }
        // *@domain does not match a look-alike domain.
        #expect(send(v, rootFor("bob@evilpartner.example")).denial != nil)
        #expect(send(try verifier(principals: ["bob@partner.example"]), rootFor("bob@partner.example")).denial == nil)
        #expect(send(try verifier(principals: ["*"]), rootFor("anyone@anywhere.example")).denial == nil)
    }

    @Test func domainPatternsAdmitOneLocalPart() {
        let o = ProxyConfig.Organization(did: "did:web:partner.example", name: "P", principals: ["*@partner.example"], maxScope: [])
        #expect(o.admits(principal: "bob@partner.example") && o.admits(principal: "b.o+b@partner.example"))
        for id in ["mallory@bank.example@partner.example", "@partner.example", "@@partner.example", "bob@evilpartner.example",
                   "bob@sub.partner.example", "bob@partner.example.evil", "bob@PARTNER.example"] {
            #expect(!o.admits(principal: id), "\(id)")
        }
    }

    @Test func onlyTheRootNamesAPrincipal() throws {
        let root = rootFor("bob@partner.example", scope: "invoices:read")
        let next = SigningKey.generate(.edDSA)
        var l = Link(agent, to: next, parent: root)
        l.scope = "invoices:read"
        l.extraClaims = [("principal", .object(JSONObject(members: [("sub", .string("carol@partner.example"))])))]
        let leaf = l.token
        let r = try verifier().verify(head(leaf: leaf, ancestors: [root], proof: proof(next, for: leaf)), now: now)
        #expect(r.denial?.description.contains("only a root delegation from an organization names a principal") == true)
    }

    @Test func routesMatchOnOrganization() throws {
        let routes = [ProxyConfig.Route(prefix: "/partners/", effect: .allow, organizations: [partner.did]),
                      ProxyConfig.Route(prefix: "/internal/", effect: .allow, principals: [alice.did])]
        let v = try verifier(routes: routes)
        let leaf = rootFor("bob@partner.example")
        #expect(v.verify(head("GET", "/partners/x", leaf: leaf, proof: proof(agent, "GET", "/partners/x", for: leaf)), now: now).denial == nil)
        let d = v.verify(head("GET", "/internal/x", leaf: leaf, proof: proof(agent, "GET", "/internal/x", for: leaf)), now: now).denial
        #expect(d?.code == .accessDenied)
        // Alice's own chain is not the partner's.
        var l = Link(alice, to: agent)
        l.scope = "invoices:read"
        let own = l.token
        let r = v.verify(head("GET", "/partners/x", leaf: own, proof: proof(agent, "GET", "/partners/x", for: own)), now: now)
        #expect(r.denial?.description == "this route does not admit the organization")
    }

    /// Policy names a partner's person as it names an enrolled principal.
    @Test func routesMatchAPartnersPerson() throws {
        let routes = [ProxyConfig.Route(prefix: "/bob/", effect: .allow, principals: ["bob@partner.example"])]
        let v = try verifier(routes: routes)
        let bob = rootFor("bob@partner.example"), carol = rootFor("carol@partner.example")
        #expect(v.verify(head("GET", "/bob/x", leaf: bob, proof: proof(agent, "GET", "/bob/x", for: bob)), now: now).denial == nil)
        #expect(v.verify(head("GET", "/bob/x", leaf: carol, proof: proof(agent, "GET", "/bob/x", for: carol)), now: now).denial?.code == .accessDenied)
        let text = "upstream http://127.0.0.1:9;\npublic_origin https://a.example;\n"
            + "organization \(partner.did) { name P; principals *@partner.example; max_scope a; }\n"
        #expect(throws: Never.self) { try ConfigParser.parse(text + "route / { effect allow; principals bob@partner.example; }", file: "p") }
        #expect(throws: ConfigError.self) { try ConfigParser.parse(text + "route / { effect allow; principals eve@other.example; }", file: "p") }
    }
}
