import FoundationEssentials
import MandateCore
import MandateHTTP
import MandateRegistry
import MandateServer

/// The registry in a config's state_dir, for the lifecycle commands and for `serve`.
struct RegistryPlace {
    var configPath: String
    var config: ProxyConfig
    var store: RegistryStore

    /// `--config FILE`: the proxy's config, which names state_dir (and the admin listener to tell).
    init(_ o: Options) throws {
        guard let path = o.one("--config") else {
            throw CLIError(message: "--config FILE is required: the proxy's config, whose state_dir holds the registry", status: 2)
        }
        configPath = path
        config = try Serve.load(path)
        guard let store = try Self.open(config, path) else {
            throw CLIError(message: "\(path): state_dir is not set; the registry lives in that directory (state_dir /var/lib/mandate;)")
        }
        self.store = store
    }

    /// nil when the config has no state_dir.
    static func open(_ config: ProxyConfig, _ path: String) throws -> RegistryStore? {
        guard let dir = config.stateDir else { return nil }
        do { return try RegistryStore(directory: dir) } catch { throw CLIError(message: "\(path): \(error.message)") }
    }

    /// After a change: the running proxy swaps in the new view before this returns, so that
    /// the very next request is judged by it.
    func announce() throws {
        var err = StandardError()
        guard let a = config.adminListen, let tokenFile = config.adminTokenFile else {
            print("mandate: stored; a running proxy applies it within 100 ms (it polls the registry), a stopped one at start", to: &err)
            return
        }
        let token = try Files.readText(tokenFile).trimmingCharacters(in: "\n\r \t")
        let host = a.host == "0.0.0.0" ? "127.0.0.1" : a.host == "::" ? "::1" : a.host
        let url = "http://\(host.contains(":") ? "[\(host)]" : host):\(a.port)/v1/registry/refresh"
        let r: HTTPClient.Response
        do {
            r = try HTTPClient.perform(method: "POST", url: url, headers: [HTTPHeader("Authorization", "Bearer " + token)],
                                       body: [], timeout: 10)
        } catch {
            print("mandate: stored; no proxy answers on admin_listen \(a.host):\(a.port), so it applies when the proxy starts", to: &err)
            return
        }
        guard r.status == 200 else {
            let why = String(decoding: r.body, as: UTF8.self).trimmingCharacters(in: "\n")
            throw CLIError(message: "stored, but the proxy on admin_listen \(a.host):\(a.port) did not apply it (\(r.status) \(why)); it will within 100 ms if it polls this state_dir")
        }
        print("mandate: the running proxy has applied it", to: &err)
    }
}

extension RegistryRefusal {
    var cli: CLIError { CLIError(message: message) }
}

/// `mandate principal add|list`.
enum PrincipalCommand {
    static func run(_ args: [String]) throws {
        guard let sub = args.first else { throw CLIError(message: commandUsage("principal") ?? "principal add|list", status: 2) }
        let o = try Options(Array(args.dropFirst()), valued: ["--config", "--name", "--key", "--did", "--webhook"], flags: ["--json"])
        switch sub {
        case "add":
            let place = try RegistryPlace(o)
            let name = try o.required("--name")
            var did: String, keyFile: String? = nil
            var err = StandardError()
            if let path = o.one("--key") {
                guard o.one("--did") == nil else { throw CLIError(message: "--key and --did exclude each other", status: 2) }
                let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
                if FileManager.default.fileExists(atPath: path) {
                    did = try Files.loadKey(path).did
                } else {
                    let key = SigningKey.generate(.edDSA)
                    try Files.writePrivate(path, key.privateJWK.serialized() + [0x0a])
                    print("mandate: generated \(path) (EdDSA, mode 0600): keep it with the principal", to: &err)
                    did = key.did
                }
                keyFile = absolute
            } else {
                did = try o.required("--did")
            }
            if let w = o.one("--webhook"), !(w.hasPrefix("https://") || w.hasPrefix("http://")) {
                throw CLIError(message: "--webhook must be an http(s) URL", status: 2)
            }
            do { try place.store.addPrincipal(did: did, name: name, webhook: o.one("--webhook"), keyFile: keyFile, now: unixNow()) }
            catch { throw error.cli }
            print("principal \(name): \(did)")
            try place.announce()
        case "list":
            let place = try RegistryPlace(o)
            let registered: [PrincipalRecord]
            do { registered = try place.store.principals() } catch { throw error.cli }
            let configured = place.config.principals.filter { p in !registered.contains { $0.did == p.did } }
            // A configured principal is revoked in the registry's revocations, not in its own row.
            let revoked: Set<String>
            do { revoked = try place.store.view(now: unixNow()).revokedPrincipals } catch { throw error.cli }
            func status(_ p: ProxyConfig.Principal) -> String { revoked.contains(p.did) ? "revoked" : "active" }
            if o.flags.contains("--json") {
                var items = registered.map(\.json)
                items += configured.map { p in
                    .object(JSONObject(members: [("did", .string(p.did)), ("name", .string(p.name)), ("status", .string(status(p))),
                                                 ("source", .string("config"))]))
                }
                print(String(decoding: JSONObject(members: [("principals", .array(items))]).serialized(), as: UTF8.self))
                return
            }
            var rows = [["NAME", "STATUS", "SOURCE", "DID"]]
            rows += registered.map { [$0.name, $0.revoked ? "revoked" : "active", "registry", $0.did] }
            rows += configured.map { [$0.name, status($0), "config", $0.did] }
            printTable(rows)
        default:
            throw CLIError(message: "unknown principal command '\(sub)'\n" + (commandUsage("principal") ?? ""), status: 2)
        }
    }
}

/// `mandate agent register|list|show|suspend|resume`.
enum AgentCommand {
    static func run(_ args: [String]) throws {
        guard let sub = args.first else { throw CLIError(message: commandUsage("agent") ?? "agent register|list|show|suspend|resume", status: 2) }
        let o = try Options(Array(args.dropFirst()), valued: ["--config", "--owner", "--name", "--scope", "--ttl", "--out", "--owner-key", "--alg"],
                            flags: ["--json"])
        let place = try RegistryPlace(o)
        let store = place.store
        func target() throws -> String {
            guard o.positional.count == 1 else { throw CLIError(message: "agent \(sub) takes one agent: its name or DID", status: 2) }
            return o.positional[0]
        }
        do {
            switch sub {
            case "register":
                try register(o, place)
            case "list":
                let agents = try store.agents()
                if o.flags.contains("--json") {
                    print(String(decoding: JSONObject(members: [("agents", .array(agents.map(\.json)))]).serialized(), as: UTF8.self))
                    return
                }
                var rows = [["NAME", "STATUS", "OWNER", "LAST SEEN", "REQUESTS", "DENIALS", "DID"]]
                rows += agents.map { [$0.name, $0.standing, $0.ownerName, lastSeen($0.lastSeen), String($0.requests), String($0.denials), $0.did] }
                printTable(rows)
            case "show":
                let id = try target()
                guard let a = try store.agent(id) else { throw CLIError(message: "no agent \(id) in the registry") }
                let delegations = try store.delegations(to: a.did)
                if o.flags.contains("--json") {
                    var members = a.json.object!.members
                    members.append(("delegations", .array(delegations.map(\.json))))
                    print(String(decoding: JSONObject(members: members).serialized(), as: UTF8.self))
                    return
                }
                print("agent      \(a.name)\ndid        \(a.did)\nowner      \(a.ownerName) (\(a.owner))\nstatus     \(a.standing)")
                print("last seen  \(lastSeen(a.lastSeen))\nrequests   \(a.requests)\ndenials    \(a.denials)")
                print("delegations:")
                var rows = [["JTI", "STATUS", "EXPIRES", "SCOPE", "PARENT"]]
                rows += delegations.map { [$0.jti, $0.revoked ? "revoked" : "active", lastSeen($0.exp * 1000), $0.scopes, $0.parent ?? "-"] }
                printTable(rows, indent: "  ")
            case "suspend", "resume":
                let a = try store.setAgent(try target(), suspended: sub == "suspend")
                print("agent \(a.name) (\(a.did)): \(a.status.rawValue)")
                try place.announce()
            default:
                throw CLIError(message: "unknown agent command '\(sub)'\n" + (commandUsage("agent") ?? ""), status: 2)
            }
        } catch let r as RegistryRefusal {
            throw r.cli
        }
    }

    /// A new key and DID for the agent, its root delegation signed with the owner's key.
    static func register(_ o: Options, _ place: RegistryPlace) throws {
        let store = place.store
        let ownerID = try o.required("--owner"), name = try o.required("--name")
        guard let owner = try store.principal(ownerID) else {
            throw CLIError(message: "unknown owner '\(ownerID)': add it first with mandate principal add --config \(place.configPath) --name \(ownerID) --key FILE")
        }
        if owner.revoked { throw CLIError(message: "owner \(owner.name) (\(owner.did)) has been revoked") }
        if try store.agent(name) != nil { throw CLIError(message: "an agent named \(name) is already registered") }
        guard let keyPath = o.one("--owner-key") ?? owner.keyFile else {
            throw CLIError(message: "no key file is recorded for \(owner.name) (added with --did); pass --owner-key FILE", status: 2)
        }
        let ownerKey = try Files.loadKey(keyPath)
        guard sameDID(ownerKey.did, owner.did) else {
            throw CLIError(message: "\(keyPath): holds the key of \(ownerKey.did), not of \(owner.name) (\(owner.did))")
        }
        guard let alg = JWSAlgorithm(rawValue: o.one("--alg") ?? "EdDSA"), alg != .rs256 else {
            throw CLIError(message: "--alg is EdDSA or ES256", status: 2)
        }
        let ttl = try parseDuration(o.one("--ttl") ?? "24h")
        let scope = o.one("--scope") ?? ""
        guard ScopeToken.isScope(scope) else { throw CLIError(message: "--scope: space-separated RFC 6749 scope tokens", status: 2) }
        if scope.isEmpty {
            var err = StandardError()
            print("mandate: warning: no --scope: the agent's delegation grants nothing, so every route that needs a scope refuses it", to: &err)
        }
        let dir = o.one("--out") ?? name
        let keyFile = dir + "/agent.jwk", chainFile = dir + "/chain"
        if FileManager.default.fileExists(atPath: keyFile) { throw CLIError(message: "\(keyFile) exists; not replacing an agent's key") }
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]) }
        catch { throw CLIError(message: "\(dir): cannot create the directory") }
        let agent = SigningKey.generate(alg)
        let now = unixNow(), jti = Mint.newID()
        let token = Mint.delegation(key: ownerKey, to: agent.did, jkt: agent.thumbprint, scope: scope, issuedAt: now, ttl: ttl,
                                    parent: nil, audience: nil, maxDepth: nil, jti: jti)
        try Files.writePrivate(keyFile, agent.privateJWK.serialized() + [0x0a])
        try Files.write(chainFile, token + "\n")
        do {
            try store.registerAgent(did: agent.did, name: name, root: DelegationRecord(
                jti: jti, issuer: owner.did, subject: agent.did, scopes: scope, exp: now + ttl, created: now), now: now)
        } catch {
            try? FileManager.default.removeItem(atPath: keyFile)
            try? FileManager.default.removeItem(atPath: chainFile)
            throw error
        }
        print("agent \(name): \(agent.did)")
        print("key:   \(keyFile)")
        print("chain: \(chainFile)   (delegation \(jti), scope \"\(scope)\", expires in \(o.one("--ttl") ?? "24h"))")
        try place.announce()
    }
}

/// `mandate revoke agent|delegation|principal ID`.
enum RevokeCommand {
    static func run(_ args: [String]) throws {
        let o = try Options(args, valued: ["--config"])
        guard o.positional.count == 2, ["agent", "delegation", "principal"].contains(o.positional[0]) else {
            throw CLIError(message: commandUsage("revoke") ?? "revoke agent|delegation|principal ID", status: 2)
        }
        let place = try RegistryPlace(o)
        let id = o.positional[1], now = unixNow()
        do {
            switch o.positional[0] {
            case "agent":
                let did = try place.store.revokeAgent(id, now: now)
                print("revoked agent \(did)")
            case "delegation":
                let n = try place.store.revokeDelegation(id, now: now)
                print("revoked delegation \(id)" + (n > 1 ? " and \(n - 1) recorded below it" : ""))
            default:
                let did = try place.store.revokePrincipal(id, configured: place.config.principals, now: now)
                print("revoked principal \(did)")
            }
        } catch {
            throw error.cli
        }
        try place.announce()
    }
}

func lastSeen(_ millis: Int64?) -> String {
    guard let millis, millis > 0 else { return "never" }
    var s = ""
    appendTimestamp(millis, to: &s)
    return s
}

/// Columns padded to their widest cell.
func printTable(_ rows: [[String]], indent: String = "") {
    guard let first = rows.first else { return }
    let widths = first.indices.map { i in rows.map { $0[i].count }.max() ?? 0 }
    for r in rows {
        let cells = r.enumerated().map { i, c in i == r.count - 1 ? c : c + String(repeating: " ", count: widths[i] - c.count) }
        print(indent + cells.joined(separator: "  "))
    }
}
