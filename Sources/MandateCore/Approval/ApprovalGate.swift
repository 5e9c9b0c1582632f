/// The exact request a human is asked to approve. An approval is bound to all of it: a receipt
/// for one request never admits another (another URL, body, amount or chain).
public struct ApprovalRequest: Sendable, Equatable {
    /// The principal at the root of the chain: who is asked (CIBA login_hint).
    public var principal: String
    public var organization: String?
    public var agent: String
    /// The agent's display name in the registry, when it is registered.
    public var agentName: String?
    /// DIDs from the principal to the agent, and the links' jti.
    public var chain: [String]
    public var jtis: [String]
    public var method: String
    /// public_origin + the normalised path + the query: what the agent signed in htu.
    public var url: String
    /// base64url(SHA-256(body)); of the empty string when there is no body.
    public var bodySHA256: String
    /// The first bytes of the body, printable, for the person deciding (at most 256 characters).
    public var bodySummary: String
    /// The route that asked for approval.
    public var route: String

    public init(principal: String, organization: String? = nil, agent: String, chain: [String], jtis: [String],
                method: String, url: String, bodySHA256: String = "", bodySummary: String = "", route: String) {
        self.principal = principal; self.organization = organization; self.agent = agent; self.chain = chain
        self.jtis = jtis; self.method = method; self.url = url; self.bodySHA256 = bodySHA256
        self.bodySummary = bodySummary; self.route = route
    }

    /// Same method, URL, body and chain: what a receipt is bound to.
    public func sameAction(_ o: ApprovalRequest) -> Bool {
        method == o.method && url == o.url && bodySHA256 == o.bodySHA256 && chain == o.chain && jtis == o.jtis
    }
}

/// A decision, signed: by the principal's key (`mandate approve`), or by the approval service's
/// key for a decision made on its web page by the signed-in principal.
public struct ApprovalReceipt: Sendable, Equatable {
    /// The approval id (the CIBA auth_req_id).
    public var id: String
    /// Who decided: the principal.
    public var approver: String
    /// The signed receipt, a compact JWS (docs/approvals.md).
    public var token: String
    /// base64url(SHA-256(token)), for the audit trail.
    public var hash: String
    public init(id: String, approver: String, token: String, hash: String) {
        self.id = id; self.approver = approver; self.token = token; self.hash = hash
    }
}

public enum ApprovalState: Sendable {
    /// Not decided yet: ready fires when the human decides (or the approval expires).
    case pending(id: String, ready: Readiness)
    /// Approved for exactly this request; the receipt is spent by this answer (single use).
    case approved(ApprovalReceipt)
    case denied(id: String, approver: String)
    case expired(id: String)
    /// An unknown id, one issued for another request, or one already used.
    case refused(Denial)

    /// The approval this state is about (none for a refusal).
    public var approvalID: String? {
        switch self {
        case .pending(let id, _), .denied(let id, _), .expired(let id): return id
        case .approved(let r): return r.id
        case .refused: return nil
        }
    }
}

/// Pending approvals, behind a small interface: a later issue keeps them in Redis so that
/// several replicas share them.
public protocol ApprovalGate: Sendable {
    /// Without `id`, opens an approval for `request` and asks its principal. With `id` (held
    /// request woken, or an agent's retry carrying Approval-Id), the approval's state for exactly
    /// this request; an approved one is spent by the answer that says so.
    func submit(_ request: ApprovalRequest, id: String?, now: Int64) -> ApprovalState
    /// Approvals waiting for a person's answer (/metrics).
    func pending(now: Int64) -> Int
}
