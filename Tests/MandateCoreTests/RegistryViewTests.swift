import Testing
@testable import MandateCore
import MandateCrypto

/// The registry's rules on a verified chain (RegistryView.refusal), and through the pipeline:
/// a revocation holds for a chain already in the cache.
@Suite struct RegistryViewTests {
    let principal = "did:key:z6MkPrincipal"
    let agent = "did:key:z6MkAgent", helper = "did:key:z6MkHelper"

    /// principal → agent → helper, jti root first.
    var chain: VerifiedChain {
        var c = VerifiedChain(principal: principal, agent: helper, dids: [principal, agent, helper], scopes: ["read"],
                              proofKeyThumbprint: "jkt", notBefore: 0, expiresAt: .max, ancestry: [])
        c.jtis = ["root-jti", "leaf-jti"]
        return c
    }

    @Test func emptyViewPasses() {
        #expect(RegistryView.empty.refusal(for: chain) == nil)
        #expect(RegistryView(agents: [agent: .active, helper: .active]).refusal(for: chain) == nil)
    }

    @Test func refusesSuspendedAgentAnywhereInTheChain() {
        let d = RegistryView(agents: [agent: .suspended]).refusal(for: chain)
        #expect(d?.code == .invalidToken && d?.status == 401)
        #expect(d?.description == "agent \(agent) is suspended")
    }

    @Test func refusesRevokedAgent() {
        #expect(RegistryView(agents: [helper: .revoked]).refusal(for: chain)?.description == "agent \(helper) has been revoked")
    }

    @Test func revokedLinkRevokesEveryDescendant() {
        // The root's jti is in every chain below it, so the leaf's chain is refused too.
        let d = RegistryView(revokedDelegations: ["root-jti"]).refusal(for: chain)
        #expect(d?.code == .invalidToken)
        #expect(d?.description == "delegation 1 of 2 (root) (jti root-jti) has been revoked")
        #expect(RegistryView(revokedDelegations: ["other"]).refusal(for: chain) == nil)
    }

    @Test func refusesRevokedRootPrincipal() {
        #expect(RegistryView(revokedPrincipals: [principal]).refusal(for: chain)?.description == "principal \(principal) has been revoked")
    }

    @Test func refusesRevokedPersonOfAnOrganization() {
        var c = chain
        c.principal = "alice@partner.example"
        c.organization = principal
        let d = RegistryView(revokedPrincipals: ["alice@partner.example"]).refusal(for: c)
        #expect(d?.description == "principal alice@partner.example has been revoked")
    }

    @Test func liveRegistryCountsOnlyRegisteredAgents() {
        let live = LiveRegistry(RegistryView(agents: [agent: .active]))
        live.record(agent: agent, forwarded: true, unixMillis: 5)
        live.record(agent: agent, forwarded: false, unixMillis: 9)
        live.record(agent: helper, forwarded: true, unixMillis: 7)
        live.record(agent: nil, forwarded: false, unixMillis: 8)
        #expect(live.takeActivity() == [agent: LiveRegistry.Activity(requests: 2, denials: 1, lastSeen: 9)])
        #expect(live.takeActivity().isEmpty)
    }

    @Test func replaceSwapsTheWholeViewWithANewVersion() {
        let live = LiveRegistry()
        let v = live.replace(RegistryView(revokedDelegations: ["x"]))
        #expect(live.current().version == v && v == 1)
        #expect(live.current().revokedDelegations == ["x"])
    }

    // Through the pipeline.

    @Test func revocationHoldsForACachedChain() throws {
        let c = Chain([.edDSA, .edDSA])
        let live = LiveRegistry()
        let v = try Verifier(config: config(principals: [c.principal]), resolvers: .init(registry: live))
        #expect(v.verify(request(c), now: now).accepted)
        #expect(v.verify(request(c), now: now).accepted)  // now from the cache
        let rootJTI = try DelegationToken.parse(bytes(c.tokens[0]), limits: .init()).get().id
        live.replace(RegistryView(revokedDelegations: [rootJTI]))
        guard case .failure(let r) = v.verify(request(c), now: now) else { Issue.record("admitted"); return }
        #expect(r.denial.code == .invalidToken && r.denial.description.contains("has been revoked"))
        // The refusal names who was refused in the audit.
        #expect(r.facts.agent == c.proofKey.did && r.facts.principal == c.principal.did)
        live.replace(.empty)
        #expect(v.verify(request(c), now: now).accepted)
    }

    @Test func registryPrincipalsAreAnchorsBesideTheConfigs() throws {
        let configured = Chain([.edDSA]), registered = Chain([.edDSA])
        let live = LiveRegistry()
        let v = try Verifier(config: config(principals: [configured.principal]), resolvers: .init(registry: live))
        #expect(v.verify(request(registered), now: now).denial?.description.contains("not an enrolled principal") == true)
        live.replace(RegistryView(anchors: [registered.principal.did]))
        #expect(v.verify(request(registered), now: now).accepted)
        #expect(v.verify(request(configured), now: now).accepted)
        // Revoked later: refused from the cache as well.
        live.replace(RegistryView(revokedPrincipals: [registered.principal.did]))
        #expect(v.verify(request(registered), now: now).denial?.description == "principal \(registered.principal.did) has been revoked")
    }
}
