import CSQLite
import Glibc
import MandateCore
import Synchronization

/// Why a registry operation was refused; the admin API answers with `status`.
public struct RegistryRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable { case invalid, notFound, conflict, storage }
    public var kind: Kind
    public var message: String
    public init(_ kind: Kind, _ message: String) { self.kind = kind; self.message = message }
    public var description: String { message }

    public var status: Int {
        switch kind {
        case .invalid: 400
        case .notFound: 404
        case .conflict: 409
        case .storage: 503
        }
    }
}

public struct PrincipalRecord: Sendable, Equatable {
    public var did: String
    public var name: String
    public var webhook: String?
    /// Where the principal's key was when it was added (a hint for `mandate agent register`).
    public var keyFile: String?
    public var revoked: Bool
    public var created: Int64
}

public struct AgentRecord: Sendable, Equatable {
    public var did: String
    public var owner: String
    public var ownerName: String
    public var name: String
    public var status: RegistryView.AgentStatus
    public var created: Int64
    /// Unix milliseconds of its latest decision, nil before its first request.
    public var lastSeen: Int64?
    public var requests: Int64
    public var denials: Int64
    /// Whether its requests would be admitted now, with what above it: its own status, else
    /// principal_revoked, delegation_revoked (none of its delegations is active) or delegation_expired.
    public var standing: String
}

public struct DelegationRecord: Sendable, Equatable {
    public var jti: String
    public var parent: String?
    public var issuer: String
    public var subject: String
    public var scopes: String
    public var exp: Int64
    public var revoked: Bool
    public var created: Int64
    public init(jti: String, parent: String? = nil, issuer: String, subject: String, scopes: String, exp: Int64,
                revoked: Bool = false, created: Int64) {
        self.jti = jti; self.parent = parent; self.issuer = issuer; self.subject = subject; self.scopes = scopes
        self.exp = exp; self.revoked = revoked; self.created = created
    }
}

/// The registry in SQLite: `state_dir/registry.db`, WAL mode (the proxy reads while the CLI
/// writes), versioned migrations. Thread-safe: one connection, one lock.
public final class RegistryStore: @unchecked Sendable {  // `db` is used only under `lock`
    public static let fileName = "registry.db"

    /// Migration n (1-based) takes the schema from version n − 1 to n; never edit a shipped one.
    static let migrations: [String] = [
        """
        CREATE TABLE principals (
            did TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            webhook TEXT,
            key_file TEXT,
            status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
            created INTEGER NOT NULL
        );
        CREATE TABLE agents (
            did TEXT PRIMARY KEY,
            owner TEXT NOT NULL REFERENCES principals(did),
            name TEXT NOT NULL UNIQUE,
            status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'revoked')),
            created INTEGER NOT NULL,
            last_seen INTEGER,
            requests INTEGER NOT NULL DEFAULT 0,
            denials INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX agents_owner ON agents(owner);
        CREATE TABLE delegations (
            jti TEXT PRIMARY KEY,
            parent TEXT,
            issuer TEXT NOT NULL,
            subject TEXT NOT NULL,
            scopes TEXT NOT NULL,
            exp INTEGER NOT NULL,
            status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
            created INTEGER NOT NULL
        );
        CREATE INDEX delegations_parent ON delegations(parent);
        CREATE INDEX delegations_subject ON delegations(subject);
        CREATE TABLE revocations (
            kind TEXT NOT NULL CHECK (kind IN ('agent', 'delegation', 'principal')),
            target TEXT NOT NULL,
            at INTEGER NOT NULL,
            PRIMARY KEY (kind, target)
        );
        """,
    ]
    public static var schemaVersion: Int { migrations.count }

    public let path: String
    private let db: SQLiteDatabase
    private let lock = Mutex(())

    /// Opens (creating it and `directory` when missing) `directory/registry.db`.
    public convenience init(directory: String) throws(RegistryRefusal) {
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw RegistryRefusal(.storage, "state_dir \(directory): cannot create it (\(String(cString: strerror(errno))))")
        }
        try self.init(path: directory + "/" + Self.fileName)
    }

    public init(path: String) throws(RegistryRefusal) {
        self.path = path
        do {
            db = try SQLiteDatabase(path: path)
            try db.run("PRAGMA busy_timeout = 5000")
            try db.run("PRAGMA foreign_keys = ON")
            let mode = try db.scalar("PRAGMA journal_mode = WAL")?.text
            guard mode == "wal" else { throw Reason("\(path): cannot use WAL mode (journal_mode is \(mode ?? "unknown"))") }
            try db.run("PRAGMA synchronous = NORMAL")
            try migrate()
        } catch let r as Reason {
            throw RegistryRefusal(.storage, r.text)
        } catch {
            throw RegistryRefusal(.storage, "\(path): \(error)")
        }
    }

    private func migrate() throws {
        try db.run("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)")
        let current = Int(try db.scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")?.integer ?? 0)
        if current > Self.schemaVersion {
            throw Reason("\(path): the registry's schema is version \(current), newer than this mandate knows (\(Self.schemaVersion)); run a newer mandate")
        }
        for v in current ..< Self.schemaVersion {
            try db.transaction { () throws in
                // Again inside the lock: another process may have migrated meanwhile.
                let now = Int(try db.scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")?.integer ?? 0)
                guard now == v else { return }
                for statement in Self.migrations[v].split(separator: ";") where !statement.allSatisfy(\.isWhitespace) {
                    try db.run(String(statement))
                }
                try db.run("INSERT INTO schema_migrations (version, applied) VALUES (?, ?)",
                           [.integer(Int64(v + 1)), .integer(Int64(time(nil)))])
            }
        }
    }

    /// Runs `body` with the connection, a storage failure as a refusal.
    @discardableResult
    private func locked<T: Sendable>(_ body: (SQLiteDatabase) throws -> T) throws(RegistryRefusal) -> T {
        do {
            return try lock.withLock { _ in try body(db) }
        } catch let r as RegistryRefusal {
            throw r
        } catch let r as Reason {
            throw RegistryRefusal(.storage, r.text)
        } catch {
            throw RegistryRefusal(.storage, "\(error)")
        }
    }

    // MARK: Reading

    public var schema: Int { (try? locked { Int(try $0.scalar("SELECT MAX(version) FROM schema_migrations")?.integer ?? 0) }) ?? 0 }

    public var journalMode: String { (try? locked { try $0.scalar("PRAGMA journal_mode")?.text ?? "" }) ?? "" }

    /// Changes when another connection commits (SQLite's `PRAGMA data_version`).
    public func dataVersion() throws(RegistryRefusal) -> Int64 {
        try locked { try $0.scalar("PRAGMA data_version")?.integer ?? 0 }
    }

    public func principals() throws(RegistryRefusal) -> [PrincipalRecord] {
        try locked { try $0.rows("SELECT did, name, webhook, key_file, status, created FROM principals ORDER BY name").map(Self.principal) }
    }

    /// By DID or name.
    public func principal(_ id: String) throws(RegistryRefusal) -> PrincipalRecord? {
        try locked {
            try $0.rows("SELECT did, name, webhook, key_file, status, created FROM principals WHERE did = ?1 OR name = ?1 ORDER BY did = ?1 DESC LIMIT 1",
                        [.text(id)]).first.map(Self.principal)
        }
    }

    static let agentColumns = """
        SELECT a.did, a.owner, p.name, a.name, a.status, a.created, a.last_seen, a.requests, a.denials,
          CASE WHEN a.status != 'active' THEN a.status
               WHEN p.status != 'active' OR EXISTS (SELECT 1 FROM revocations r WHERE r.kind = 'principal' AND r.target = a.owner)
                 THEN 'principal_revoked'
               WHEN NOT EXISTS (SELECT 1 FROM delegations d WHERE d.subject = a.did AND d.status = 'active'
                                AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.kind = 'delegation' AND r.target = d.jti))
                 THEN 'delegation_revoked'
               WHEN NOT EXISTS (SELECT 1 FROM delegations d WHERE d.subject = a.did AND d.status = 'active' AND d.exp > strftime('%s', 'now'))
                 THEN 'delegation_expired'
               ELSE 'active' END
        FROM agents a JOIN principals p ON p.did = a.owner
        """

    public func agents() throws(RegistryRefusal) -> [AgentRecord] {
        try locked { try $0.rows(Self.agentColumns + " ORDER BY a.name").map(Self.agent) }
    }

    /// By DID or name.
    public func agent(_ id: String) throws(RegistryRefusal) -> AgentRecord? {
        try locked { try $0.rows(Self.agentColumns + " WHERE a.did = ?1 OR a.name = ?1 ORDER BY a.did = ?1 DESC LIMIT 1", [.text(id)]).first.map(Self.agent) }
    }

    /// The delegations to `subject`, and every recorded one below them.
    public func delegations(to subject: String) throws(RegistryRefusal) -> [DelegationRecord] {
        try locked {
            try $0.rows("""
                WITH RECURSIVE d(jti) AS (SELECT jti FROM delegations WHERE subject = ?1
                                          UNION SELECT x.jti FROM delegations x JOIN d ON x.parent = d.jti)
                SELECT jti, parent, issuer, subject, scopes, exp, status, created FROM delegations
                WHERE jti IN d ORDER BY created, jti
                """, [.text(subject)]).map(Self.delegation)
        }
    }

    public func delegation(_ jti: String) throws(RegistryRefusal) -> DelegationRecord? {
        try locked {
            try $0.rows("SELECT jti, parent, issuer, subject, scopes, exp, status, created FROM delegations WHERE jti = ?",
                        [.text(jti)]).first.map(Self.delegation)
        }
    }

    /// What the verifier needs, built in one read transaction. Revoked delegations that expired
    /// over an hour ago are left out: no chain holding them verifies any more.
    public func view(now: Int64) throws(RegistryRefusal) -> RegistryView {
        try locked { db in
            try db.transaction { () throws -> RegistryView in
                var v = RegistryView()
                var principals: [String: ProxyConfig.Principal] = [:]
                try db.run("SELECT did, status, name, webhook FROM principals") { r in
                    let did = r[0].text ?? ""
                    if r[1].text == "active" {
                        v.anchors.insert(did)
                        principals[did] = ProxyConfig.Principal(did: did, name: r[2].text ?? did, webhook: r[3].text)
                    } else {
                        v.revokedPrincipals.insert(did)
                    }
                }
                var agents: [String: RegistryView.AgentStatus] = [:]
                var names: [String: String] = [:]
                try db.run("SELECT did, status, name FROM agents") { r in
                    agents[r[0].text ?? ""] = RegistryView.AgentStatus(rawValue: r[1].text ?? "") ?? .revoked
                    if let name = r[2].text { names[r[0].text ?? ""] = name }
                }
                try db.run("SELECT jti FROM delegations WHERE status = 'revoked' AND exp > ?", [.integer(now - 3600)]) { r in
                    v.revokedDelegations.insert(r[0].text ?? "")
                }
                try db.run("SELECT kind, target FROM revocations") { r in
                    let target = r[1].text ?? ""
                    switch r[0].text {
                    case "agent": agents[target] = .revoked
                    case "delegation": v.revokedDelegations.insert(target)
                    default: v.revokedPrincipals.insert(target)
                    }
                }
                for p in v.revokedPrincipals { v.anchors.remove(p); principals[p] = nil }
                var view = RegistryView(anchors: v.anchors, revokedPrincipals: v.revokedPrincipals, agents: agents,
                                        revokedDelegations: v.revokedDelegations)
                view.principals = principals
                view.agentNames = names
                return view
            }
        }
    }

    // MARK: Writing

    public func addPrincipal(did: String, name: String, webhook: String? = nil, keyFile: String? = nil,
                             now: Int64) throws(RegistryRefusal) {
        guard DID.isWellFormed(did) else { throw RegistryRefusal(.invalid, "principal DID '\(did)' is not a DID") }
        guard Self.isName(name) else { throw RegistryRefusal(.invalid, "principal name '\(name)': 1–64 characters of A–Z a–z 0–9 . _ - @") }
        try locked { db in
            if try db.scalar("SELECT 1 FROM principals WHERE did = ?1 OR name = ?2", [.text(did), .text(name)]) != nil {
                throw RegistryRefusal(.conflict, "a principal with DID \(did) or name \(name) is already registered")
            }
            try db.run("INSERT INTO principals (did, name, webhook, key_file, created) VALUES (?, ?, ?, ?, ?)",
                       [.text(did), .text(name), webhook.map(SQLValue.text) ?? .null, keyFile.map(SQLValue.text) ?? .null, .integer(now)])
        }
    }

    /// Records `agent` (the root delegation's `sub`), owned by its issuer, and the delegation.
    public func registerAgent(did: String, name: String, root: DelegationRecord, now: Int64) throws(RegistryRefusal) {
        guard Self.isName(name) else { throw RegistryRefusal(.invalid, "agent name '\(name)': 1–64 characters of A–Z a–z 0–9 . _ - @") }
        guard DID.isWellFormed(did) else { throw RegistryRefusal(.invalid, "agent DID '\(did)' is not a DID") }
        try locked { db in
            try db.transaction { () throws -> Void in
                guard let status = try db.scalar("SELECT status FROM principals WHERE did = ?", [.text(root.issuer)])?.text else {
                    throw RegistryRefusal(.notFound, "owner \(root.issuer) is not a registered principal")
                }
                guard status == "active" else { throw RegistryRefusal(.conflict, "owner \(root.issuer) has been revoked") }
                if try db.scalar("SELECT 1 FROM agents WHERE did = ?1 OR name = ?2", [.text(did), .text(name)]) != nil {
                    throw RegistryRefusal(.conflict, "an agent with DID \(did) or name \(name) is already registered")
                }
                if try db.scalar("SELECT 1 FROM delegations WHERE jti = ?", [.text(root.jti)]) != nil {
                    throw RegistryRefusal(.conflict, "delegation \(root.jti) is already recorded")
                }
                try db.run("INSERT INTO agents (did, owner, name, created) VALUES (?, ?, ?, ?)",
                           [.text(did), .text(root.issuer), .text(name), .integer(now)])
                try Self.insert(root, into: db)
            }
        }
    }

    /// Records a delegation made below a registered one (its parent's jti in `parent`).
    public func addDelegation(_ d: DelegationRecord) throws(RegistryRefusal) {
        try locked { db in
            if try db.scalar("SELECT 1 FROM delegations WHERE jti = ?", [.text(d.jti)]) != nil {
                throw RegistryRefusal(.conflict, "delegation \(d.jti) is already recorded")
            }
            try Self.insert(d, into: db)
        }
    }

    /// active ⇄ suspended. Revocation is final: a revoked agent is not resumed.
    public func setAgent(_ id: String, suspended: Bool) throws(RegistryRefusal) -> AgentRecord {
        guard let a = try agent(id) else { throw RegistryRefusal(.notFound, "no agent \(id) in the registry") }
        if a.status == .revoked { throw RegistryRefusal(.conflict, "agent \(a.name) (\(a.did)) has been revoked; revocation is final") }
        try locked { db in
            // Never over a revocation another process committed since the read above.
            try db.run("UPDATE agents SET status = ? WHERE did = ? AND status != 'revoked'",
                       [.text(suspended ? "suspended" : "active"), .text(a.did)])
        }
        return try agent(a.did)!
    }

    /// A registered agent by name or DID, or any agent's DID: its chains are refused from the
    /// next request, and its recorded delegations (and theirs below) are marked revoked.
    @discardableResult
    public func revokeAgent(_ id: String, now: Int64) throws(RegistryRefusal) -> String {
        let did = try agent(id)?.did ?? id
        guard DID.isWellFormed(did) else { throw RegistryRefusal(.notFound, "no agent \(id) in the registry (and it is not a DID)") }
        try locked { db in
            try db.transaction { () throws in
                try db.run("UPDATE agents SET status = 'revoked' WHERE did = ?", [.text(did)])
                try db.run("""
                    WITH RECURSIVE d(jti) AS (SELECT jti FROM delegations WHERE subject = ?1
                                              UNION SELECT x.jti FROM delegations x JOIN d ON x.parent = d.jti)
                    UPDATE delegations SET status = 'revoked' WHERE jti IN d
                    """, [.text(did)])
                try Self.recordRevocation("agent", did, now, db)
            }
        }
        return did
    }

    /// A delegation by jti, recorded or not (an agent's own sub-delegation), and every recorded
    /// one below it. Returns how many recorded delegations it marked.
    @discardableResult
    public func revokeDelegation(_ jti: String, now: Int64) throws(RegistryRefusal) -> Int {
        guard !jti.isEmpty, jti.utf8.count <= 256 else { throw RegistryRefusal(.invalid, "a jti is 1–256 bytes") }
        return try locked { db in
            try db.transaction { () throws -> Int in
                let n = try db.run("""
                    WITH RECURSIVE d(jti) AS (SELECT ?1 UNION SELECT x.jti FROM delegations x JOIN d ON x.parent = d.jti)
                    UPDATE delegations SET status = 'revoked' WHERE jti IN d
                    """, [.text(jti)])
                try Self.recordRevocation("delegation", jti, now, db)
                return n
            }
        }
    }

    /// A registered principal by name or DID, a configured principal's DID, or an
    /// organisation's person (alice@partner.example): every chain rooted at it is refused.
    @discardableResult
    /// `id` is a registry principal's name or DID, else a configured principal's name (one of
    /// `configured`: the proxy's `principal DID { name …; }` entries), else a DID or a partner's
    /// person id, taken as given. A configured principal's name stands for its DID: taken as a
    /// person id it would revoke nobody while the command said it had.
    public func revokePrincipal(_ id: String, configured: [ProxyConfig.Principal] = [], now: Int64) throws(RegistryRefusal) -> String {
        var target = id
        if let p = try principal(id) {
            target = p.did
        } else if !id.hasPrefix("did:") {
            let named = configured.filter { $0.name == id }
            guard named.count <= 1 else {
                throw RegistryRefusal(.conflict, "\(named.count) configured principals are named \(id); give the DID")
            }
            if let p = named.first { target = p.did }
        }
        guard DID.isWellFormed(target) || PrincipalClaim.isIdentifier(target) else {
            throw RegistryRefusal(.notFound, "no principal \(id) in the registry (and it is not a DID or a principal id)")
        }
        try locked { db in
            try db.transaction { () throws in
                try db.run("UPDATE principals SET status = 'revoked' WHERE did = ?", [.text(target)])
                try Self.recordRevocation("principal", target, now, db)
            }
        }
        return target
    }

    /// Adds the counted activity to the agents' rows.
    public func flush(_ activity: [String: LiveRegistry.Activity]) throws(RegistryRefusal) {
        guard !activity.isEmpty else { return }
        try locked { db in
            try db.transaction { () throws in
                for (did, a) in activity {
                    try db.run("""
                        UPDATE agents SET requests = requests + ?, denials = denials + ?,
                                          last_seen = MAX(COALESCE(last_seen, 0), ?) WHERE did = ?
                        """, [.integer(a.requests), .integer(a.denials), .integer(a.lastSeen), .text(did)])
                }
            }
        }
    }

    // MARK: Rows

    private static func insert(_ d: DelegationRecord, into db: SQLiteDatabase) throws(Reason) {
        try db.run("INSERT INTO delegations (jti, parent, issuer, subject, scopes, exp, status, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   [.text(d.jti), d.parent.map(SQLValue.text) ?? .null, .text(d.issuer), .text(d.subject), .text(d.scopes),
                    .integer(d.exp), .text(d.revoked ? "revoked" : "active"), .integer(d.created)])
    }

    private static func recordRevocation(_ kind: String, _ target: String, _ now: Int64, _ db: SQLiteDatabase) throws(Reason) {
        try db.run("INSERT OR IGNORE INTO revocations (kind, target, at) VALUES (?, ?, ?)", [.text(kind), .text(target), .integer(now)])
    }

    private static func principal(_ r: [SQLValue]) -> PrincipalRecord {
        PrincipalRecord(did: r[0].text ?? "", name: r[1].text ?? "", webhook: r[2].text, keyFile: r[3].text,
                        revoked: r[4].text != "active", created: r[5].integer ?? 0)
    }

    private static func agent(_ r: [SQLValue]) -> AgentRecord {
        AgentRecord(did: r[0].text ?? "", owner: r[1].text ?? "", ownerName: r[2].text ?? "", name: r[3].text ?? "",
                    status: RegistryView.AgentStatus(rawValue: r[4].text ?? "") ?? .revoked, created: r[5].integer ?? 0,
                    lastSeen: r[6].integer, requests: r[7].integer ?? 0, denials: r[8].integer ?? 0, standing: r[9].text ?? "revoked")
    }

    private static func delegation(_ r: [SQLValue]) -> DelegationRecord {
        DelegationRecord(jti: r[0].text ?? "", parent: r[1].text, issuer: r[2].text ?? "", subject: r[3].text ?? "",
                         scopes: r[4].text ?? "", exp: r[5].integer ?? 0, revoked: r[6].text != "active", created: r[7].integer ?? 0)
    }

    /// Names: 1–64 of A–Z a–z 0–9 . _ - @ (they appear in directory names and on the command line).
    static func isName(_ s: String) -> Bool {
        (1 ... 64).contains(s.utf8.count) && s.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2E || b == 0x5F || b == 0x2D || b == 0x40
        }
    }
}
