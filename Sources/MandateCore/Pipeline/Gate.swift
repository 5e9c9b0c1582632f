import MandateHTTP

/// What the server asks of the pipeline for each request head.
public protocol RequestGate: Sendable {
    /// `peer` is the TCP peer address (text form). `now` is Unix seconds.
    func admit(_ head: HTTPRequestHead, peer: String, requestID: String, now: Int64) -> Admission
}

public enum Admission: Sendable {
    case forward(ForwardPlan)
    case refuse(Denial, AuditFacts)
}

/// Who the pipeline established, for the log line and the upstream headers.
public struct AuditFacts: Sendable, Equatable {
    public var principal: String?
    public var agent: String?
    public var chain: [String]
    public var route: String?
    public var scope: String?
    public init(principal: String? = nil, agent: String? = nil, chain: [String] = [], route: String? = nil,
                scope: String? = nil) {
        self.principal = principal; self.agent = agent; self.chain = chain; self.route = route; self.scope = scope
    }
}

/// An admitted request: what to send upstream.
public struct ForwardPlan: Sendable, Equatable {
    /// Normalised path plus the original query: what policy decided on is what the upstream sees.
    public var target: String
    /// Already rewritten: hop-by-hop and credentials removed, Mandate-* and X-Forwarded-* set.
    public var headers: [HTTPHeader]
    public var facts: AuditFacts
    public init(target: String, headers: [HTTPHeader], facts: AuditFacts) {
        self.target = target; self.headers = headers; self.facts = facts
    }
}
