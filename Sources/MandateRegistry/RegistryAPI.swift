import Glibc
import MandateCore

extension PrincipalRecord {
    public var json: JSONValue {
        .object(JSONObject(members: [("did", .string(did)), ("name", .string(name)), ("webhook", webhook.map(JSONValue.string) ?? .null),
                                     ("status", .string(revoked ? "revoked" : "active")), ("created", .integer(created))]))
    }
}

extension AgentRecord {
    public var json: JSONValue {
        .object(JSONObject(members: [("did", .string(did)), ("name", .string(name)), ("owner", .string(owner)),
                                     ("owner_name", .string(ownerName)), ("status", .string(status.rawValue)), ("standing", .string(standing)),
                                     ("created", .integer(created)), ("last_seen", lastSeen.map(JSONValue.integer) ?? .null),
                                     ("requests", .integer(requests)), ("denials", .integer(denials))]))
    }
}

extension DelegationRecord {
    public var json: JSONValue {
        .object(JSONObject(members: [("jti", .string(jti)), ("parent", parent.map(JSONValue.string) ?? .null), ("issuer", .string(issuer)),
                                     ("subject", .string(subject)), ("scope", .string(scopes)), ("exp", .integer(exp)),
                                     ("status", .string(revoked ? "revoked" : "active"))]))
    }
}

/// A root delegation someone brings to register its agent: signed by the owner's own DID key
/// (the registry never holds a person's key), to a delegate whose key it confirms.
public enum RootDelegation {
    public static func verify(_ token: String, owner: String, now: Int64) -> Result<DelegationToken, RegistryRefusal> {
        func invalid(_ why: String) -> Result<DelegationToken, RegistryRefusal> { .failure(RegistryRefusal(.invalid, "delegation: \(why)")) }
        let t: DelegationToken
        switch DelegationToken.parse(Array(token.utf8)[...], limits: .init()) {
        case .success(let parsed): t = parsed
        case .failure(let r): return invalid(r.text)
        }
        guard t.issuer == owner else { return invalid("iss is \(t.issuer), not the owner \(owner)") }
        guard t.parentHash == nil, t.principalSubject == nil else { return invalid("not a principal's root delegation (prf or principal present)") }
        guard case .success(let issuer) = DID.resolve(t.issuer) else { return invalid("the owner's DID does not resolve locally (did:key or did:jwk)") }
        guard t.keyID == issuer.methodID else { return invalid("kid is not the owner's key (\(issuer.methodID))") }
        if case .failure(let r) = t.jws.verify(with: issuer.key) { return invalid("\(r.description)") }
        guard t.expiresAt > now else { return invalid("expired") }
        if case .success(let sub) = DID.resolve(t.subject), let jkt = t.confirmedKeyThumbprint, jkt != sub.key.thumbprint {
            return invalid("cnf.jkt is not the thumbprint of sub's key")
        }
        return .success(t)
    }
}

/// The registry as JSON under `/v1/` on the admin listener (docs/registry.md). Every change is
/// in the proxy's view before the answer goes out.
public struct RegistryAPI: Sendable {
    public struct Answer: Sendable {
        public var status: Int
        public var body: [UInt8]
        public var allow: String?
    }

    let sync: RegistrySync
    /// The running configuration's `principal` entries, so that a revocation may name one by its name.
    let configuredPrincipals: @Sendable () -> [ProxyConfig.Principal]
    public init(sync: RegistrySync, configuredPrincipals: @escaping @Sendable () -> [ProxyConfig.Principal] = { [] }) {
        self.sync = sync
        self.configuredPrincipals = configuredPrincipals
    }

    public func answer(method: String, path: String, body: [UInt8], requestID: String) -> Answer {
        let now = Int64(time(nil))
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map { Self.percentDecoded($0) }
        // parts[0] == "v1"
        let route = Array(parts.dropFirst())
        func only(_ allowed: String, also other: String? = nil, _ body: () throws(RegistryRefusal) -> Answer) -> Answer {
            guard method == allowed else {
                let allow = other.map { "\($0), \(allowed)" } ?? allowed
                return Answer(status: 405, body: Self.error("invalid_request", "\(path) answers \(allow)", requestID), allow: allow)
            }
            do { return try body() } catch { return Self.refusal(error, requestID) }
        }
        switch route.count {
        case 1 where route[0] == "principals":
            if method == "GET" {
                return only("GET") { () throws(RegistryRefusal) in
                    ok(["principals": .array(try sync.store.principals().map(\.json))])
                }
            }
            return only("POST", also: "GET") { () throws(RegistryRefusal) in
                let o = try Self.object(body)
                let did = try Self.string(o, "did"), name = try Self.string(o, "name")
                let webhook = try Self.optionalString(o, "webhook")
                if let webhook, !(webhook.hasPrefix("https://") || webhook.hasPrefix("http://")) {
                    throw RegistryRefusal(.invalid, "webhook must be an http(s) URL")
                }
                try sync.store.addPrincipal(did: did, name: name, webhook: webhook, now: now)
                try sync.refresh()
                return ok(try sync.store.principal(did)!.json, status: 201)
            }
        case 1 where route[0] == "agents":
            if method == "GET" {
                return only("GET") { () throws(RegistryRefusal) in ok(["agents": .array(try sync.store.agents().map(\.json))]) }
            }
            return only("POST", also: "GET") { () throws(RegistryRefusal) in
                let o = try Self.object(body)
                let owner = try Self.string(o, "owner"), name = try Self.string(o, "name"), token = try Self.string(o, "delegation")
                guard let p = try sync.store.principal(owner) else { throw RegistryRefusal(.notFound, "no principal \(owner) in the registry") }
                let t: DelegationToken
                switch RootDelegation.verify(token, owner: p.did, now: now) {
                case .success(let v): t = v
                case .failure(let r): throw r
                }
                try sync.store.registerAgent(did: t.subject, name: name, root: DelegationRecord(
                    jti: t.id, issuer: t.issuer, subject: t.subject, scopes: t.scopes.joined(separator: " "), exp: t.expiresAt, created: now), now: now)
                try sync.refresh()
                return ok(try sync.store.agent(t.subject)!.json, status: 201)
            }
        case 2 where route[0] == "agents":
            return only("GET") { () throws(RegistryRefusal) in
                guard let a = try sync.store.agent(route[1]) else { throw RegistryRefusal(.notFound, "no agent \(route[1]) in the registry") }
                var members = a.json.object!.members
                members.append(("delegations", .array(try sync.store.delegations(to: a.did).map(\.json))))
                return ok(.object(JSONObject(members: members)))
            }
        case 3 where route[0] == "agents" && (route[2] == "suspend" || route[2] == "resume"):
            return only("POST") { () throws(RegistryRefusal) in
                let a = try sync.store.setAgent(route[1], suspended: route[2] == "suspend")
                try sync.refresh()
                return ok(a.json)
            }
        case 1 where route[0] == "revocations":
            return only("POST") { () throws(RegistryRefusal) in
                let o = try Self.object(body)
                let type = try Self.string(o, "type"), id = try Self.string(o, "id")
                let target: String
                switch type {
                case "agent": target = try sync.store.revokeAgent(id, now: now)
                case "delegation": try sync.store.revokeDelegation(id, now: now); target = id
                case "principal": target = try sync.store.revokePrincipal(id, configured: configuredPrincipals(), now: now)
                default: throw RegistryRefusal(.invalid, "type is agent, delegation or principal")
                }
                let version = try sync.refresh()
                return ok(["type": .string(type), "id": .string(target), "version": .integer(version)])
            }
        case 2 where route[0] == "registry" && route[1] == "refresh":
            return only("POST") { () throws(RegistryRefusal) in ok(["version": .integer(try sync.refresh())]) }
        default:
            break
        }
        return Answer(status: 404, body: Self.error("not_found", "no admin API at \(path)", requestID))
    }

    private func ok(_ members: KeyValuePairs<String, JSONValue>, status: Int = 200) -> Answer {
        ok(.object(JSONObject(members: members.map { ($0.key, $0.value) })), status: status)
    }

    private func ok(_ value: JSONValue, status: Int = 200) -> Answer {
        guard case .object(let o) = value else { return Answer(status: status, body: []) }
        return Answer(status: status, body: o.serialized() + [0x0A])
    }

    static func refusal(_ r: RegistryRefusal, _ requestID: String) -> Answer {
        let code: String
        switch r.kind {
        case .invalid: code = "invalid_request"
        case .notFound: code = "not_found"
        case .conflict: code = "conflict"
        case .storage: code = "temporarily_unavailable"
        }
        return Answer(status: r.status, body: error(code, r.message, requestID))
    }

    /// `{error, error_description, request_id}`, as every refusal of the proxy.
    static func error(_ code: String, _ description: String, _ requestID: String) -> [UInt8] {
        JSONObject(members: [("error", .string(code)), ("error_description", .string(description)), ("request_id", .string(requestID))])
            .serialized() + [0x0A]
    }

    static func object(_ body: [UInt8]) throws(RegistryRefusal) -> JSONObject {
        switch StrictJSON.parseObject(body) {
        case .success(let o): return o
        case .failure(let e): throw RegistryRefusal(.invalid, "the body must be a JSON object (\(e))")
        }
    }

    static func string(_ o: JSONObject, _ name: String) throws(RegistryRefusal) -> String {
        guard let v = o[name]?.string, !v.isEmpty else { throw RegistryRefusal(.invalid, "\(name) is required (a non-empty string)") }
        return v
    }

    static func optionalString(_ o: JSONObject, _ name: String) throws(RegistryRefusal) -> String? {
        switch o[name] {
        case nil, .null?: return nil
        case .string(let s)?: return s
        default: throw RegistryRefusal(.invalid, "\(name) must be a string")
        }
    }

    /// %XX in a path segment (a DID's ':' may come encoded); anything malformed stays as is.
    static func percentDecoded(_ s: Substring) -> String {
        guard s.contains("%") else { return String(s) }
        var out: [UInt8] = [], b = Array(s.utf8), i = 0
        while i < b.count {
            if b[i] == 0x25, i + 2 < b.count, let v = UInt8(String(decoding: b[i + 1 ... i + 2], as: UTF8.self), radix: 16) {
                out.append(v); i += 3
            } else { out.append(b[i]); i += 1 }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
