import Testing
@testable import MandateCore
import MandateHTTP

/// Route policy: longest normalised prefix, methods, principals, agents, scopes, effect.
@Suite struct RoutePolicyTests {
    typealias Route = ProxyConfig.Route

    func chain(principal: String = "did:key:zAlice", agent: String = "did:key:zAgent", scopes: [String] = ["read"])
        -> VerifiedChain {
        VerifiedChain(principal: principal, agent: agent, dids: [principal, agent], scopes: scopes,
                      proofKeyThumbprint: "", notBefore: 0, expiresAt: .max, ancestry: [])
    }

    func decide(_ routes: [Route], _ method: String, _ path: String, _ c: VerifiedChain? = nil)
        -> (Route?, Denial?) {
        RoutePolicy(routes: routes).decide(method: method, path: path, chain: c ?? chain())
    }

    // MARK: Through the pipeline

    func pipeline(_ routes: [Route], _ method: String = "GET", _ target: String, scopes: String = "read write")
        throws -> Result<Verifier.Verified, Verifier.Refusal> {
        let c = Chain([.edDSA], scopes: [scopes])
        let v = try Verifier(config: config(principals: [c.principal], routes: routes))
        return v.verify(request(c, method, target), now: now)
    }

    @Test func noRouteIsAccessDenied() throws {
        let d = try pipeline([Route(prefix: "/api/", effect: .allow)], "GET", "/orders").denial
        #expect(d?.code == .accessDenied)
        #expect(d?.status == 403)
        #expect(d?.wwwAuthenticate == nil)
    }

    @Test func denyEffectIsAccessDenied() throws {
        let d = try pipeline([Route(prefix: "/", effect: .deny)], "GET", "/orders").denial
        #expect(d?.code == .accessDenied)
        #expect(d?.status == 403)
        #expect(d?.description == "denied by policy")
    }

    @Test func approveEffectIsApprovalRequired() throws {
        let d = try pipeline([Route(prefix: "/", effect: .approve)], "POST", "/payments").denial
        #expect(d?.code == .approvalRequired)
        #expect(d?.status == 403)
    }

    @Test func allowEffectAdmits() throws {
        #expect(try pipeline([Route(prefix: "/", scopes: ["read"], effect: .allow)], "GET", "/orders").accepted)
    }

    @Test func insufficientScopeNamesRequiredScopeInChallenge() throws {
        let d = try pipeline([Route(prefix: "/", scopes: ["read", "admin"], effect: .allow)], "GET", "/orders",
                             scopes: "read").denial
        #expect(d?.code == .insufficientScope)
        #expect(d?.status == 403)
        #expect(d?.requiredScope == "read admin")
        #expect(d?.wwwAuthenticate?.contains(#"error="insufficient_scope""#) == true)
        #expect(d?.wwwAuthenticate?.contains(#"scope="read admin""#) == true)
    }

    @Test func policyDecidesOnNormalisedPath() throws {
        let routes = [Route(prefix: "/public/", effect: .allow), Route(prefix: "/admin", effect: .deny)]
        let d = try pipeline(routes, "GET", "/public/../admin/users").denial
        #expect(d?.code == .accessDenied)
        #expect(d?.description == "denied by policy")
    }

    // MARK: Decisions

    @Test func principalsRestrictionRefusesOtherPrincipals() {
        let r = [Route(prefix: "/", effect: .allow, principals: ["did:key:zBob"])]
        #expect(decide(r, "GET", "/x").1?.code == .accessDenied)
        #expect(decide(r, "GET", "/x").1?.description.contains("principal") == true)
        #expect(decide(r, "GET", "/x", chain(principal: "did:key:zBob")).1 == nil)
    }

    @Test func agentsRestrictionRefusesOtherAgents() {
        let r = [Route(prefix: "/", effect: .allow, agents: ["did:key:zBot"])]
        #expect(decide(r, "GET", "/x").1?.code == .accessDenied)
        #expect(decide(r, "GET", "/x").1?.description.contains("agent") == true)
        #expect(decide(r, "GET", "/x", chain(agent: "did:key:zBot")).1 == nil)
    }

    @Test func longestPrefixWins() {
        let routes = [Route(prefix: "/", effect: .allow), Route(prefix: "/admin/", effect: .deny),
                      Route(prefix: "/admin/reports/", effect: .allow)]
        #expect(decide(routes, "GET", "/orders").1 == nil)
        #expect(decide(routes, "GET", "/admin/users").1?.code == .accessDenied)
        #expect(decide(routes, "GET", "/admin/reports/q1").1 == nil)
        #expect(decide(routes, "GET", "/admin/reports/q1").0?.prefix == "/admin/reports/")
    }

    @Test func equalPrefixesKeepFileOrder() {
        let routes = [Route(prefix: "/a", effect: .deny, origin: "first"), Route(prefix: "/a", effect: .allow, origin: "second")]
        #expect(decide(routes, "GET", "/a").0?.origin == "first")
    }

    @Test func methodsFilterSkipsRoutesForOtherMethods() {
        let routes = [Route(prefix: "/", effect: .deny), Route(prefix: "/orders", methods: ["GET", "HEAD"], effect: .allow)]
        #expect(decide(routes, "GET", "/orders").1 == nil)
        #expect(decide(routes, "HEAD", "/orders").1 == nil)
        #expect(decide(routes, "DELETE", "/orders").1?.description == "denied by policy")
        #expect(decide([routes[1]], "DELETE", "/orders").0 == nil)
    }

    @Test func everyRouteScopeIsRequired() {
        let r = [Route(prefix: "/", scopes: ["read", "write"], effect: .allow)]
        #expect(decide(r, "GET", "/x", chain(scopes: ["read"])).1?.code == .insufficientScope)
        #expect(decide(r, "GET", "/x", chain(scopes: ["write", "read"])).1 == nil)
    }
}
