import MandateCore

/// One agent the load generator speaks as: its key, its chain (root first), and the request bytes
/// that stay the same for every request it sends (all but the DPoP proof).
public struct AgentIdentity: Sendable {
    public let key: SigningKey
    /// The leaf delegation (the `Authorization: DPoP` token).
    public let leaf: String
    /// The delegations above the leaf, root first (the `Agent-Delegation` header).
    public let ancestors: [String]

    public init(key: SigningKey, leaf: String, ancestors: [String]) {
        self.key = key; self.leaf = leaf; self.ancestors = ancestors
    }

    /// `count` agents, each delegated directly by `principal` for `scope`.
    public static func mint(count: Int, principal: SigningKey, alg: JWSAlgorithm, scope: String, ttl: Int64,
                            now: Int64) -> [AgentIdentity] {
        (0 ..< count).map { _ in
            let agent = SigningKey.generate(alg)
            let token = Mint.delegation(key: principal, to: agent.did, jkt: agent.thumbprint, scope: scope, issuedAt: now,
                                        ttl: ttl, parent: nil, audience: nil, maxDepth: nil, jti: Mint.newID())
            return AgentIdentity(key: agent, leaf: token, ancestors: [])
        }
    }
}

/// What every request carries: method, target, headers and body, fixed for the run.
public struct RequestTemplate: Sendable {
    public var method: String
    /// The request-target (path and query).
    public var target: String
    /// The Host header value.
    public var host: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// The DPoP `htu`: origin + path, without query and fragment (RFC 9449 §4.2).
    public var htu: String

    public init(method: String, target: String, host: String, headers: [(name: String, value: String)], body: [UInt8],
                origin: String) {
        self.method = method; self.target = target; self.host = host; self.headers = headers; self.body = body
        htu = origin + String(target.prefix { $0 != "?" && $0 != "#" })
    }

    /// The head up to (not including) the DPoP field, for `identity` (nil: no credentials).
    func prefix(for identity: AgentIdentity?) -> [UInt8] {
        var s = "\(method) \(target) HTTP/1.1\r\nHost: \(host)\r\nUser-Agent: mandate-loadgen\r\n"
        for h in headers { s += "\(h.name): \(h.value)\r\n" }
        if let identity {
            s += "Authorization: DPoP \(identity.leaf)\r\n"
            if !identity.ancestors.isEmpty { s += "Agent-Delegation: \(identity.ancestors.joined(separator: ", "))\r\n" }
        }
        return Array(s.utf8)
    }

    /// Content-Length (when there is a body), the blank line, the body.
    var suffix: [UInt8] {
        var s = ""
        if !body.isEmpty || method == "POST" || method == "PUT" || method == "PATCH" { s += "Content-Length: \(body.count)\r\n" }
        s += "\r\n"
        return Array(s.utf8) + body
    }

    /// A complete request without credentials (`--no-auth`): the same bytes for every request.
    public var plainRequest: [UInt8] { prefix(for: nil) + suffix }
}
