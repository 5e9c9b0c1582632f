import MandateCrypto

/// Walks a presented chain from the human principal to the leaf, link by link (docs/credentials.md).
public struct ChainWalker: Sendable {
    public struct Rules: Sendable {
        public var principals: Set<String>
        /// Partner organisations, by DID: their roots speak for their own people.
        public var organizations: [String: ProxyConfig.Organization] = [:]
        public var audience: String
        public var maxChainLength: Int
        public var clockSkew: Int64
        public var maxLifetime: Int64
        public var limits: CompactJWS.Limits
    }

    public let rules: Rules
    let dids: DIDCache

    public init(rules: Rules, dids: DIDCache) {
        self.rules = rules
        self.dids = dids
    }

    public enum Outcome: Sendable {
        case verified(VerifiedChain)
        case refused(Denial)
        /// A DID is being fetched (did:web): walk again once it is ready.
        case pending(Readiness)
    }

    /// One link's verdict; `keys` are the thumbprints of its delegate's authentication keys.
    enum LinkCheck {
        case ok(keys: [String], until: Int64?)
        case refused(Reason)
        case unavailable(Reason)
        case pending(Readiness)
    }

    /// `tokens` root first, the leaf last. `anchors`: the registry's active principals, accepted
    /// as roots beside the configured ones.
    public func walk(_ tokens: [ArraySlice<UInt8>], ancestry: [UInt8], now: Int64, anchors: Set<String> = []) -> Outcome {
        guard tokens.count <= rules.maxChainLength else {
            return .refused(Denial(.invalidToken, "delegation chain longer than \(rules.maxChainLength) links"))
        }
        var links: [DelegationToken] = []
        links.reserveCapacity(tokens.count)
        var agentKeys: [String] = []
        var resolvedUntil: Int64?
        for (i, raw) in tokens.enumerated() {
            let place = Self.place(i, tokens.count)
            let link: DelegationToken
            switch DelegationToken.parse(raw, limits: rules.limits) {
            case .success(let t): link = t
            case .failure(let r): return .refused(Denial(.invalidToken, "\(place): \(r.text)"))
            }
            switch checkLink(link, index: i, links: links, now: now, anchors: anchors) {
            case .ok(let keys, let until):
                agentKeys = keys
                if let until { resolvedUntil = min(resolvedUntil ?? until, until) }
            case .refused(let r): return .refused(Denial(.invalidToken, "\(place): \(r.text)"))
            case .unavailable(let r):
                var d = Denial(.temporarilyUnavailable, "\(place): \(r.text)")
                d.retryAfter = 1
                return .refused(d)
            case .pending(let r): return .pending(r)
            }
            links.append(link)
        }
        let leaf = links[links.count - 1], root = links[0]
        let organization = rules.organizations[root.issuer] != nil ? root.issuer : nil
        // rootIsAnchor saw to it: an organization's root names its person.
        guard organization == nil || root.principalSubject != nil else {
            return .refused(Denial(.invalidToken, "a root from an organization must name its principal (principal.sub)"))
        }
        var chain = VerifiedChain(
            principal: organization == nil ? root.issuer : root.principalSubject ?? "", agent: leaf.subject, dids: [links[0].issuer] + links.map(\.subject),
            scopes: leaf.scopes, proofKeyThumbprint: leaf.confirmedKeyThumbprint ?? "",
            notBefore: links.map { max($0.notBefore ?? $0.issuedAt, $0.issuedAt) }.max()!,
            expiresAt: links.map(\.expiresAt).min()!, ancestry: ancestry,
            certificateThumbprint: leaf.certificateThumbprint,
            certificateKeys: leaf.certificateThumbprint == nil ? [] : agentKeys, resolvedUntil: resolvedUntil,
            organization: organization)
        chain.jtis = links.map(\.id)
        return .verified(chain)
    }

    static func place(_ i: Int, _ n: Int) -> String {
        n == 1 ? "delegation" : "delegation \(i + 1) of \(n)\(i == 0 ? " (root)" : i == n - 1 ? " (leaf)" : "")"
    }

    /// Every rule for link `index`, given its verified ancestors. The signature is checked
    /// before the subject is resolved: a forged link never makes the proxy fetch anything.
    func checkLink(_ t: DelegationToken, index: Int, links: [DelegationToken], now: Int64, anchors: Set<String> = []) -> LinkCheck {
        if let r = ChainRules.validity(t, now: now, skew: rules.clockSkew, maxLifetime: rules.maxLifetime) { return .refused(r) }
        if let r = ChainRules.audience(t, expected: rules.audience) { return .refused(r) }
        if let parent = links.last {
            if parent.certificateThumbprint != nil {
                return .refused(Reason("its parent is bound to a client certificate (cnf x5t#S256) and cannot delegate further"))
            }
            if let r = ChainRules.issuerIsParentSubject(t, parent)
                ?? ChainRules.parentHash(t, parent)
                ?? ChainRules.scopeNarrows(t, parent)
                ?? ChainRules.lifetimeNarrows(t, parent)
                ?? ChainRules.depth(index: index, ancestors: links) { return .refused(r) }
        } else {
            if let r = ChainRules.rootIsAnchor(t, principals: rules.principals, organizations: rules.organizations, registry: anchors) {
                return .refused(r)
            }
        }
        if !links.isEmpty && t.principalSubject != nil {
            return .refused(Reason("only a root delegation from an organization names a principal"))
        }
        // The key comes from the issuer's DID, never from the token (RFC 8725 §3.10).
        var until: Int64?
        var method: DIDDocument.Method?
        for missingKid in [false, true] {
            switch dids.lookup(t.issuer, missingKid: missingKid) {
            case .resolved(let doc, let u):
                until = u
                method = doc.assertionMethod(t.keyID)
            case .failed(let why, let temporary):
                return temporary ? .unavailable(Reason(why)) : .refused(Reason("iss is not a resolvable DID (\(why))"))
            case .pending(let r): return .pending(r)
            }
            if method != nil || until == nil { break }  // only a fetched document may be stale
        }
        guard let method else { return .refused(Reason("kid is not a verification method of the issuer (assertionMethod)")) }
        if let parent = links.last, method.thumbprint != parent.confirmedKeyThumbprint {
            return .refused(Reason("signing key is not the key the parent delegated to (cnf.jkt)"))
        }
        if case .failure(let r) = t.jws.verify(with: method.key) { return .refused(Reason(r.description)) }
        // The delegate is who holds the confirmed key: otherwise any agent could name itself
        // anyone in `sub`, the identity routes and the upstream trust.
        switch dids.lookup(t.subject) {
        case .resolved(let doc, let u):
            if let u { until = min(until ?? u, u) }
            let keys = doc.authenticationThumbprints
            if let jkt = t.confirmedKeyThumbprint, !keys.contains(jkt) {
                return .refused(Reason("cnf.jkt is not the thumbprint of a key of sub"))
            }
            return .ok(keys: keys, until: until)
        case .failed(let why, let temporary):
            return temporary ? .unavailable(Reason(why)) : .refused(Reason("sub is not a resolvable DID (\(why))"))
        case .pending(let r): return .pending(r)
        }
    }
}

/// The chain rules, one per rule (docs/credentials.md, "Chain rules").
public enum ChainRules {
    /// `nbf ≤ now < exp` with skew; `iat` not in the future; `exp ≤ now + max lifetime`.
    public static func validity(_ t: DelegationToken, now: Int64, skew: Int64, maxLifetime: Int64) -> Reason? {
        if t.expiresAt <= t.issuedAt { return Reason("exp must be after iat") }
        if now >= t.expiresAt + skew { return Reason("expired") }
        if let nbf = t.notBefore, nbf > now + skew { return Reason("not yet valid (nbf)") }
        if t.issuedAt > now + skew { return Reason("issued in the future (iat)") }
        if t.expiresAt > now + maxLifetime + skew { return Reason("exp is beyond the maximum delegation lifetime") }
        return nil
    }

    public static func audience(_ t: DelegationToken, expected: String) -> Reason? {
        guard let aud = t.audiences else { return nil }
        return aud.contains(expected) ? nil : Reason("aud does not include this service")
    }

    /// The root is issued by an enrolled principal, or by a declared organization for one of the
    /// people it may speak for (`principal.sub`) and within its `max_scope`. `registry`: the
    /// agent registry's active principals, enrolled as the config's are.
    public static func rootIsAnchor(_ t: DelegationToken, principals: Set<String>,
                                    organizations: [String: ProxyConfig.Organization], registry: Set<String> = []) -> Reason? {
        if t.parentHash != nil { return Reason("the root must not carry prf; is the chain incomplete?") }
        if principals.contains(t.issuer) || registry.contains(t.issuer) {
            return t.principalSubject == nil ? nil : Reason("an enrolled principal's root does not name another principal")
        }
        guard let org = organizations[t.issuer] else { return Reason("root issuer is not an enrolled principal or organization") }
        guard let person = t.principalSubject else {
            return Reason("a root from an organization must name its principal (principal.sub)")
        }
        guard org.admits(principal: person) else { return Reason("the organization may not speak for principal \(person)") }
        if let wide = t.scopes.first(where: { !org.maxScope.contains($0) }) {
            return Reason("scope '\(wide)' is beyond the organization's max_scope")
        }
        return nil
    }

    public static func issuerIsParentSubject(_ t: DelegationToken, _ parent: DelegationToken) -> Reason? {
        t.issuer == parent.subject ? nil : Reason("iss is not the parent's sub")
    }

    public static func parentHash(_ t: DelegationToken, _ parent: DelegationToken) -> Reason? {
        guard let prf = t.parentHash else { return Reason("prf is required below the root") }
        let expected = Base64URL.encode(SHA256.hash(parent.raw))
        return constantTimeEqual(prf.utf8, expected.utf8) ? nil : Reason("prf is not the hash of the parent token")
    }

    public static func scopeNarrows(_ t: DelegationToken, _ parent: DelegationToken) -> Reason? {
        let allowed = Set(parent.scopes)
        for s in t.scopes where !allowed.contains(s) { return Reason("scope '\(s)' is wider than the parent's") }
        return nil
    }

    public static func lifetimeNarrows(_ t: DelegationToken, _ parent: DelegationToken) -> Reason? {
        t.expiresAt <= parent.expiresAt ? nil : Reason("exp outlives the parent delegation")
    }

    /// Link `index` is within every ancestor's max_depth (levels allowed below that ancestor).
    public static func depth(index: Int, ancestors: [DelegationToken]) -> Reason? {
        for (j, a) in ancestors.enumerated() {
            if let d = a.maxDepth, index - j > d { return Reason("exceeds max_depth \(d) set by delegation \(j + 1)") }
        }
        return nil
    }
}
