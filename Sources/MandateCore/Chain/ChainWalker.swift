import MandateCrypto

/// Walks a presented chain from the human principal to the leaf, link by link (docs/credentials.md).
public struct ChainWalker: Sendable {
    public struct Rules: Sendable {
        public var principals: Set<String>
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

    /// `tokens` root first, the leaf last.
    public func walk(_ tokens: [ArraySlice<UInt8>], ancestry: [UInt8], now: Int64) -> Result<VerifiedChain, Denial> {
        guard tokens.count <= rules.maxChainLength else {
            return .failure(Denial(.invalidToken, "delegation chain longer than \(rules.maxChainLength) links"))
        }
        var links: [DelegationToken] = []
        links.reserveCapacity(tokens.count)
        for (i, raw) in tokens.enumerated() {
            let place = Self.place(i, tokens.count)
            let link: DelegationToken
            switch DelegationToken.parse(raw, limits: rules.limits) {
            case .success(let t): link = t
            case .failure(let r): return .failure(Denial(.invalidToken, "\(place): \(r.text)"))
            }
            if let r = checkLink(link, index: i, links: links, now: now) {
                return .failure(Denial(.invalidToken, "\(place): \(r.text)"))
            }
            links.append(link)
        }
        let leaf = links[links.count - 1]
        // A certificate-bound leaf names no key; the agent's key is its sub's (resolved above).
        guard let agentKey = leaf.confirmedKeyThumbprint ?? (try? dids.resolve(leaf.subject).get())?.thumbprint else {
            return .failure(Denial(.invalidToken, "sub is not a resolvable DID"))
        }
        return .success(VerifiedChain(
            principal: links[0].issuer, agent: leaf.subject, dids: [links[0].issuer] + links.map(\.subject),
            scopes: leaf.scopes, proofKeyThumbprint: agentKey,
            notBefore: links.map { max($0.notBefore ?? $0.issuedAt, $0.issuedAt) }.max()!,
            expiresAt: links.map(\.expiresAt).min()!, ancestry: ancestry,
            certificateThumbprint: leaf.certificateThumbprint))
    }

    static func place(_ i: Int, _ n: Int) -> String {
        n == 1 ? "delegation" : "delegation \(i + 1) of \(n)\(i == 0 ? " (root)" : i == n - 1 ? " (leaf)" : "")"
    }

    /// Every rule for link `index`, given its verified ancestors.
    func checkLink(_ t: DelegationToken, index: Int, links: [DelegationToken], now: Int64) -> Reason? {
        if let r = ChainRules.validity(t, now: now, skew: rules.clockSkew, maxLifetime: rules.maxLifetime) { return r }
        if let r = ChainRules.audience(t, expected: rules.audience) { return r }
        if let parent = links.last {
            if parent.certificateThumbprint != nil {
                return Reason("its parent is bound to a client certificate (cnf x5t#S256) and cannot delegate further")
            }
            if let r = ChainRules.issuerIsParentSubject(t, parent) { return r }
            if let r = ChainRules.parentHash(t, parent) { return r }
            if let r = ChainRules.scopeNarrows(t, parent) { return r }
            if let r = ChainRules.lifetimeNarrows(t, parent) { return r }
            if let r = ChainRules.depth(index: index, ancestors: links) { return r }
        } else {
            if let r = ChainRules.rootIsPrincipal(t, principals: rules.principals) { return r }
        }
        // The key comes from the issuer's DID, never from the token (RFC 8725 §3.10).
        let resolved: DIDCache.Resolved
        switch dids.resolve(t.issuer) {
        case .success(let r): resolved = r
        case .failure(let e): return Reason("iss is not a resolvable DID (\(e.description))")
        }
        // Byte comparison: Swift's == would also accept canonically equivalent spellings.
        guard sameBytes(t.keyID, resolved.methodID) else {
            return Reason("kid is not the issuer's verification method")
        }
        if let parent = links.last, resolved.thumbprint != parent.confirmedKeyThumbprint {
            return Reason("signing key is not the key the parent delegated to (cnf.jkt)")
        }
        // The delegate is who holds the confirmed key: otherwise any agent could name itself
        // anyone in `sub`, the identity routes and the upstream trust.
        switch dids.resolve(t.subject) {
        case .success(let s) where t.confirmedKeyThumbprint == nil || s.thumbprint == t.confirmedKeyThumbprint: break
        case .success: return Reason("cnf.jkt is not the thumbprint of the key of sub")
        case .failure(let e): return Reason("sub is not a resolvable DID (\(e.description))")
        }
        switch t.jws.verify(with: resolved.key) {
        case .success: return nil
        case .failure(let r): return Reason(r.description)
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

    public static func rootIsPrincipal(_ t: DelegationToken, principals: Set<String>) -> Reason? {
        if t.parentHash != nil { return Reason("the root must not carry prf; is the chain incomplete?") }
        return principals.contains(t.issuer) ? nil : Reason("root issuer is not an enrolled principal")
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
