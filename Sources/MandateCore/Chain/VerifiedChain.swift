/// What a fully verified delegation chain establishes.
public struct VerifiedChain: Sendable, Equatable {
    /// The human: the root issuer (an enrolled principal's DID), or for a chain rooted at a
    /// partner organisation, the person it named (`principal.sub`).
    public var principal: String
    /// The partner organisation's DID, when it issued the root.
    public var organization: String?
    /// The authorization server, for a chain that is an OAuth access token.
    public var issuer: String?
    /// The links' jti, root first (or the access token's), for the audit trail.
    public var jtis: [String] = []
    /// Bound to a DPoP key or a client certificate; an OAuth token may be neither (Bearer).
    public var senderConstrained: Bool { !proofKeyThumbprint.isEmpty || certificateThumbprint != nil }
    /// The leaf's `sub`.
    public var agent: String
    /// DIDs from the principal to the agent.
    public let dids: [String]
    /// The leaf's scopes (each link only narrows).
    public let scopes: [String]
    /// `dids` joined by "," and `scopes` by " ", made once per verified chain (headers and logs).
    public let chainText: String
    public let scopeText: String
    /// The leaf's cnf.jkt: the DPoP key must have this thumbprint (empty for a certificate-bound leaf).
    public var proofKeyThumbprint: String
    /// The leaf's cnf x5t#S256: the request must come over a client certificate with this SHA-256,
    /// whose key is one of `certificateKeys` (the thumbprints of sub's authentication keys).
    public var certificateThumbprint: String?
    /// nil: no key is required (an OAuth token bound by RFC 8705 alone).
    public var certificateKeys: [String]?
    /// Unix seconds: a chain resting on fetched DID documents (did:web) is walked again after this.
    public var resolvedUntil: Int64?
    /// The chain is valid while `notBefore ≤ now < expiresAt` (skew applied by the checker).
    public var notBefore: Int64
    public var expiresAt: Int64
    /// Agent-Delegation exactly as presented, so a cached chain answers only for that text.
    public var ancestry: [UInt8]

    public init(principal: String, agent: String, dids: [String], scopes: [String], proofKeyThumbprint: String,
                notBefore: Int64, expiresAt: Int64, ancestry: [UInt8], certificateThumbprint: String? = nil,
                certificateKeys: [String]? = [], resolvedUntil: Int64? = nil, organization: String? = nil,
                issuer: String? = nil) {
        self.organization = organization; self.issuer = issuer
        self.certificateThumbprint = certificateThumbprint; self.certificateKeys = certificateKeys
        self.resolvedUntil = resolvedUntil
        self.principal = principal; self.agent = agent; self.dids = dids; self.scopes = scopes
        chainText = dids.joined(separator: ","); scopeText = scopes.joined(separator: " ")
        self.proofKeyThumbprint = proofKeyThumbprint; self.notBefore = notBefore; self.expiresAt = expiresAt
        self.ancestry = ancestry
    }
}
