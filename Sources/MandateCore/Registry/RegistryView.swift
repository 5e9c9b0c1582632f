import Synchronization

/// The agent registry as the verifying path sees it: an immutable value, swapped whole when the
/// registry changes, so that a request never waits on the database.
public struct RegistryView: Sendable, Equatable {
    public enum AgentStatus: String, Sendable { case active, suspended, revoked }

    /// Active registry principals' DIDs: roots they sign are accepted beside the config's principals.
    public var anchors: Set<String>
    /// Revoked principals: DIDs, and principal ids (an organisation's person, alice@partner.example).
    public var revokedPrincipals: Set<String>
    /// Every registered agent by DID, and revoked DIDs that were never registered.
    public var agents: [String: AgentStatus]
    /// Revoked delegations by jti.
    public var revokedDelegations: Set<String>
    /// Increases with each view a holder swaps in.
    public var version: Int64
    /// Active registry principals' names and webhooks, by DID (the approval service asks them).
    public var principals: [String: ProxyConfig.Principal] = [:]
    /// Registered agents' display names, by DID (shown to a principal asked to approve).
    public var agentNames: [String: String] = [:]
    /// Whether any agent is suspended or revoked: the hot path skips the lookups when none is.
    let blocksAgents: Bool

    public init(anchors: Set<String> = [], revokedPrincipals: Set<String> = [], agents: [String: AgentStatus] = [:],
                revokedDelegations: Set<String> = [], version: Int64 = 0) {
        self.anchors = anchors; self.revokedPrincipals = revokedPrincipals; self.agents = agents
        self.revokedDelegations = revokedDelegations; self.version = version
        blocksAgents = agents.values.contains { $0 != .active }
    }

    public static let empty = RegistryView()

    /// Why a verified chain, cached or just walked, is no longer honoured; nil when it is.
    /// A chain is refused when its principal is revoked, when any link is revoked (so revoking a
    /// link revokes every descendant: their chains contain it), or when any agent in it is
    /// suspended or revoked.
    public func refusal(for chain: VerifiedChain) -> Denial? {
        if !revokedPrincipals.isEmpty {
            if let root = chain.dids.first, revokedPrincipals.contains(root) {
                return Denial(.invalidToken, "principal \(root) has been revoked")
            }
            if revokedPrincipals.contains(chain.principal) {
                return Denial(.invalidToken, "principal \(chain.principal) has been revoked")
            }
        }
        if blocksAgents {
            for did in chain.dids.dropFirst() {
                switch agents[did] {
                case .suspended?: return Denial(.invalidToken, "agent \(did) is suspended")
                case .revoked?: return Denial(.invalidToken, "agent \(did) has been revoked")
                case .active?, nil: continue
                }
            }
        }
        if !revokedDelegations.isEmpty {
            for (i, jti) in chain.jtis.enumerated() where revokedDelegations.contains(jti) {
                return Denial(.invalidToken, "\(ChainWalker.place(i, chain.jtis.count)) (jti \(jti)) has been revoked")
            }
        }
        return nil
    }
}

/// Revocation state behind a small interface: a later issue keeps it in Redis, shared by
/// several proxy replicas.
public protocol RevocationState: Sendable {
    func current() -> RegistryView
}

/// The view this process verifies with, and the activity it counts for registered agents
/// (one lock for both: the event loops touch it once per decision).
public final class LiveRegistry: RevocationState {
    public struct Activity: Sendable, Equatable {
        /// Decisions for the agent (forwarded or refused), and of those, refused.
        public var requests: Int64 = 0
        public var denials: Int64 = 0
        /// Unix milliseconds of the latest.
        public var lastSeen: Int64 = 0
        public init(requests: Int64 = 0, denials: Int64 = 0, lastSeen: Int64 = 0) {
            self.requests = requests; self.denials = denials; self.lastSeen = lastSeen
        }
    }

    private struct State: Sendable {
        var view: RegistryView
        var activity: [String: Activity] = [:]
    }

    private let state: Mutex<State>

    public init(_ view: RegistryView = .empty) { state = Mutex(State(view: view)) }

    public func current() -> RegistryView { state.withLock { $0.view } }

    /// Swaps in `view` (its version made the next one); returns that version.
    @discardableResult
    public func replace(_ view: RegistryView) -> Int64 {
        state.withLock { s in
            var v = view
            v.version = s.view.version + 1
            s.view = v
            return v.version
        }
    }

    /// One decision for `agent` (the leaf, once possession is proven); ignored for an agent that
    /// is not registered.
    public func record(agent: String?, forwarded: Bool, unixMillis: Int64) {
        guard let agent else { return }
        state.withLock { s in
            guard s.view.agents[agent] != nil else { return }
            var a = s.activity[agent] ?? Activity()
            a.requests += 1
            if !forwarded { a.denials += 1 }
            a.lastSeen = max(a.lastSeen, unixMillis)
            s.activity[agent] = a
        }
    }

    /// Activity taken but not stored (the database was busy): counted again with the next.
    public func putBack(_ activity: [String: Activity]) {
        state.withLock { s in
            for (did, a) in activity {
                var b = s.activity[did] ?? Activity()
                b.requests += a.requests; b.denials += a.denials; b.lastSeen = max(b.lastSeen, a.lastSeen)
                s.activity[did] = b
            }
        }
    }

    /// The activity counted since the last call, by agent DID.
    public func takeActivity() -> [String: Activity] {
        state.withLock { s in
            let a = s.activity
            s.activity = [:]
            return a
        }
    }
}
