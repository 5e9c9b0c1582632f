import Foundation
import MandateCore
@testable import MandateRegistry
import Testing

/// The registry on a real SQLite file in a temporary directory.
@Suite final class RegistryStoreTests {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mandate-registry-\(UUID().uuidString)").path

    deinit { try? FileManager.default.removeItem(atPath: dir) }

    func open() throws -> RegistryStore { try RegistryStore(directory: dir) }

    let alice = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
    let agent = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
    let helper = "did:key:z6MknGc3ocHs3zdPiJbnaaqDi58NGb4pk1Sp9WxWufuXSdxf"

    func root(_ jti: String = "root", to subject: String? = nil) -> DelegationRecord {
        DelegationRecord(jti: jti, issuer: alice, subject: subject ?? agent, scopes: "read", exp: Int64(Date().timeIntervalSince1970) + 3600, created: 1)
    }

    @Test func migratesFromEmptyInWALMode() throws {
        let s = try open()
        #expect(s.schema == RegistryStore.schemaVersion)
        #expect(s.journalMode == "wal")
        #expect(FileManager.default.fileExists(atPath: dir + "/registry.db"))
    }

    @Test func reopeningIsIdempotent() throws {
        do {
            let s = try open()
            try s.addPrincipal(did: alice, name: "alice", now: 1)
        }
        let s = try open()
        #expect(s.schema == RegistryStore.schemaVersion)
        #expect(try s.principals().map(\.name) == ["alice"])
    }

    @Test func refusesADatabaseNewerThanTheBinary() throws {
        do {
            _ = try open()
            let db = try SQLiteDatabase(path: dir + "/registry.db")
            try db.run("INSERT INTO schema_migrations (version, applied) VALUES (?, 0)", [.integer(Int64(RegistryStore.schemaVersion + 1))])
        }
        #expect { try open() } throws: { e in
            (e as? RegistryRefusal)?.message.contains("newer than this mandate knows") == true
        }
    }

    @Test func principalsAddListFindAndRefuseDuplicates() throws {
        let s = try open()
        try s.addPrincipal(did: alice, name: "alice", webhook: "https://hooks.example/a", keyFile: "/k/alice.jwk", now: 7)
        let p = try #require(try s.principal("alice"))
        #expect(p == PrincipalRecord(did: alice, name: "alice", webhook: "https://hooks.example/a", keyFile: "/k/alice.jwk", revoked: false, created: 7))
        #expect(try s.principal(alice) == p)
        #expect { try s.addPrincipal(did: alice, name: "other", now: 8) } throws: { ($0 as? RegistryRefusal)?.kind == .conflict }
        #expect { try s.addPrincipal(did: helper, name: "alice", now: 8) } throws: { ($0 as? RegistryRefusal)?.kind == .conflict }
        #expect { try s.addPrincipal(did: "not-a-did", name: "bob", now: 8) } throws: { ($0 as? RegistryRefusal)?.kind == .invalid }
    }

    @Test func agentsRegisterWithTheirRootDelegation() throws {
        let s = try open()
        #expect { try s.registerAgent(did: agent, name: "bot", root: root(), now: 2) } throws: { ($0 as? RegistryRefusal)?.kind == .notFound }
        try s.addPrincipal(did: alice, name: "alice", now: 1)
        try s.registerAgent(did: agent, name: "bot", root: root(), now: 2)
        let a = try #require(try s.agent("bot"))
        #expect(a.did == agent && a.owner == alice && a.ownerName == "alice" && a.status == .active && a.lastSeen == nil)
        #expect(try s.agent(agent) == a)
        #expect(try s.delegations(to: agent).map(\.jti) == ["root"])
        #expect { try s.registerAgent(did: helper, name: "bot", root: root("r2", to: helper), now: 3) } throws: {
            ($0 as? RegistryRefusal)?.kind == .conflict
        }
        #expect(try s.view(now: 0).anchors == [alice])
        #expect(try s.view(now: 0).agents == [agent: .active])
    }

    @Test func suspendResumeAndRevocationIsFinal() throws {
        let s = try open()
        try s.addPrincipal(did: alice, name: "alice", now: 1)
        try s.registerAgent(did: agent, name: "bot", root: root(), now: 2)
        #expect(try s.setAgent("bot", suspended: true).status == .suspended)
        #expect(try s.view(now: 0).agents[agent] == .suspended)
        #expect(try s.setAgent(agent, suspended: false).status == .active)
        try s.revokeAgent("bot", now: 3)
        #expect(try s.agent("bot")?.status == .revoked)
        #expect(try s.delegation("root")?.revoked == true)
        #expect { try s.setAgent("bot", suspended: false) } throws: { ($0 as? RegistryRefusal)?.kind == .conflict }
        #expect { try s.setAgent("nobody", suspended: true) } throws: { ($0 as? RegistryRefusal)?.kind == .notFound }
    }

    @Test func revokingADelegationMarksItsDescendants() throws {
        let s = try open()
        try s.addPrincipal(did: alice, name: "alice", now: 1)
        try s.registerAgent(did: agent, name: "bot", root: root(), now: 2)
        let exp = Int64(Date().timeIntervalSince1970) + 3600
        try s.addDelegation(DelegationRecord(jti: "child", parent: "root", issuer: agent, subject: helper, scopes: "read", exp: exp, created: 3))
        try s.addDelegation(DelegationRecord(jti: "grandchild", parent: "child", issuer: helper, subject: "did:key:z6MkX", scopes: "read", exp: exp, created: 4))
        try s.addDelegation(DelegationRecord(jti: "sibling", parent: nil, issuer: alice, subject: helper, scopes: "read", exp: exp, created: 5))
        #expect(try s.revokeDelegation("child", now: 6) == 2)
        #expect(try s.delegation("root")?.revoked == false)
        #expect(try s.delegation("child")?.revoked == true)
        #expect(try s.delegation("grandchild")?.revoked == true)
        #expect(try s.delegation("sibling")?.revoked == false)
        #expect(try s.view(now: 0).revokedDelegations == ["child", "grandchild"])
        // A jti the registry never saw (an agent's own sub-delegation) is revoked all the same.
        try s.revokeDelegation("unrecorded", now: 7)
        #expect(try s.view(now: 0).revokedDelegations.contains("unrecorded"))
    }

    @Test func revokingAPrincipalTakesItOutOfTheAnchors() throws {
        let s = try open()
        try s.addPrincipal(did: alice, name: "alice", now: 1)
        #expect(try s.revokePrincipal("alice", now: 2) == alice)
        let v = try s.view(now: 0)
        #expect(v.anchors.isEmpty && v.revokedPrincipals == [alice])
        // A configured principal's DID, or an organisation's person, not in the table.
        try s.revokePrincipal("bob@partner.example", now: 3)
        #expect(try s.view(now: 0).revokedPrincipals == [alice, "bob@partner.example"])
        #expect { try s.revokePrincipal("no such one!", now: 4) } throws: { ($0 as? RegistryRefusal)?.kind == .notFound }
    }

    @Test func activityIsAddedToTheAgentsRows() throws {
        let s = try open()
        try s.addPrincipal(did: alice, name: "alice", now: 1)
        try s.registerAgent(did: agent, name: "bot", root: root(), now: 2)
        try s.flush([agent: .init(requests: 3, denials: 1, lastSeen: 900)])
        try s.flush([agent: .init(requests: 2, denials: 0, lastSeen: 800)])
        let a = try #require(try s.agent("bot"))
        #expect(a.requests == 5 && a.denials == 1 && a.lastSeen == 900)
    }

    @Test func aCommitByAnotherProcessReachesTheView() throws {
        let a = try open(), b = try open()
        let sync = try RegistrySync(store: a)
        #expect(sync.live.current().anchors.isEmpty)
        let version = sync.live.current().version
        try sync.refreshIfChanged()
        #expect(sync.live.current().version == version)  // nothing changed: no new view
        try b.addPrincipal(did: alice, name: "alice", now: 1)
        try sync.refreshIfChanged()
        #expect(sync.live.current().anchors == [alice])
    }
}
