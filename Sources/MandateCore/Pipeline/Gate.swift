import MandateHTTP

/// What the server asks of the pipeline for each request head.
public protocol RequestGate: Sendable {
    /// `now` is Unix seconds.
    func admit(_ head: HTTPRequestHead, peer: Peer, requestID: String, now: Int64) -> Admission
}

/// The connection a request came over.
public struct Peer: Sendable, Equatable {
    /// The TCP peer address (text form).
    public var address: String
    /// The connection is TLS (X-Forwarded-Proto https).
    public var tls: Bool
    /// A client certificate that verified against the listener's CA bundle.
    public var certificate: ClientCertificate?

    public init(address: String, tls: Bool = false, certificate: ClientCertificate? = nil) {
        self.address = address; self.tls = tls; self.certificate = certificate
    }
}

/// What a request may be bound to in a verified client certificate (RFC 8705 §3).
public struct ClientCertificate: Sendable, Equatable {
    /// base64url(SHA-256(DER)): the `x5t#S256` a bound token names (RFC 8705 §3.1).
    public var thumbprint: String
    /// RFC 7638 thumbprint of its public key when that is Ed25519 or P-256.
    public var keyThumbprint: String?

    public init(thumbprint: String, keyThumbprint: String?) {
        self.thumbprint = thumbprint; self.keyThumbprint = keyThumbprint
    }
}

public enum Admission: Sendable {
    case forward(ForwardPlan)
    case refuse(Denial, AuditFacts)
    /// Answered by the proxy itself (the RFC 9728 metadata), without a credential.
    case answer(LocalAnswer)
    /// Not decided yet (a did:web document is being fetched): admit the same head again once
    /// this is ready. The request is held meanwhile; nothing was spent (no jti claimed).
    case wait(Readiness)
    /// Policy says `effect approve`: the request is held (its body read whole, up to
    /// `maxBody`) until the principal approves exactly this request.
    case hold(ApprovalHold)
}

/// A request waiting for its principal: what goes upstream once they approve, and what they
/// are asked to approve (the server fills in the body's hash and summary once it has the body).
public struct ApprovalHold: Sendable {
    public var plan: ForwardPlan
    public var request: ApprovalRequest
    /// The agent's retry names the approval it waits for (`Approval-Id`).
    public var id: String?
    /// Seconds the request is held before 403 approval_pending.
    public var wait: Double
    /// A body larger than this is refused (413): it must be hashed before anyone is asked.
    public var maxBody: Int
    /// Held bodies stay in memory until the person answers: at most this much each (and at most
    /// 100 approvals wait for one principal).
    public static let maxHeldBody = 1 << 20
    public let gate: any ApprovalGate
    /// Asked each time the held request wakes (`now`: Unix seconds), before it is released:
    /// why its chain is no longer honoured (the agent revoked or suspended meanwhile, the chain
    /// expired), or nil. A held request is judged again, not released on an old verdict.
    public let recheck: @Sendable (Int64) -> Denial?
    public init(plan: ForwardPlan, request: ApprovalRequest, id: String?, wait: Double, maxBody: Int, gate: any ApprovalGate,
                recheck: @escaping @Sendable (Int64) -> Denial? = { _ in nil }) {
        self.plan = plan; self.request = request; self.id = id; self.wait = wait; self.maxBody = maxBody; self.gate = gate
        self.recheck = recheck
    }

    /// An approval id as the proxy issues them: base64url, 22 to 128 characters.
    public static func isID(_ s: some StringProtocol) -> Bool {
        (22...128).contains(s.utf8.count) && s.utf8.allSatisfy { Base64URL.isAlphabet($0) }
    }
}

/// A response the proxy makes itself. Content-Length, Mandate-Request-Id and Connection are added.
public struct LocalAnswer: Sendable, Equatable {
    public var status: Int
    public var headers: [HTTPHeader]
    public var body: [UInt8]
    /// When the answer is a refusal (its body is then rebuilt with the request id).
    public var denial: Denial?
    public init(status: Int, headers: [HTTPHeader], body: [UInt8], denial: Denial? = nil) {
        self.status = status; self.headers = headers; self.body = body; self.denial = denial
    }
}

/// Who the pipeline established, for the log line and the upstream headers.
public struct AuditFacts: Sendable, Equatable {
    public var principal: String?
    public var agent: String?
    public var chain: [String]
    public var route: String?
    public var scope: String?
    /// The partner organisation that issued the root, if one did.
    public var organization: String?
    /// The authorization server of an OAuth access token.
    public var issuer: String?
    /// The delegations' (or the access token's) jti, root first, for the audit trail.
    public var jtis: [String] = []
    /// How possession was proven: dpop, rfc9421, mtls, or bearer (a plain access token).
    public var proof: String?
    /// For a request that needed approval: its id, who decided, and the receipt's SHA-256.
    public var approval: String?
    public var approver: String?
    public var receipt: String?
    public init(principal: String? = nil, agent: String? = nil, chain: [String] = [], route: String? = nil,
                scope: String? = nil, organization: String? = nil, issuer: String? = nil) {
        self.principal = principal; self.agent = agent; self.chain = chain; self.route = route; self.scope = scope
        self.organization = organization; self.issuer = issuer
    }
}

/// An admitted request: what to send upstream.
public struct ForwardPlan: Sendable, Equatable {
    /// Normalised path plus the original query: what policy decided on is what the upstream sees.
    public var target: String
    /// Already rewritten: hop-by-hop and credentials removed, Mandate-* and X-Forwarded-* set.
    public var headers: [HTTPHeader]
    public var facts: AuditFacts
    /// RFC 9530: the body must have this digest (a signed request's Content-Digest); the
    /// upstream never receives the end of a body that does not.
    public var bodyDigest: ContentDigest?
    public init(target: String, headers: [HTTPHeader], facts: AuditFacts, bodyDigest: ContentDigest? = nil) {
        self.target = target; self.headers = headers; self.facts = facts; self.bodyDigest = bodyDigest
    }
}
