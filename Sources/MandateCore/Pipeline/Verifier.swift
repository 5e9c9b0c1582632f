import MandateCrypto
import MandateHTTP

/// The pipeline driver: parse the credential → prove possession → walk the chain → decide.
/// Short and boring on purpose; every rule lives in its stage.
public final class Verifier: RequestGate {
    public let config: ProxyConfig
    let walker: ChainWalker
    let chains: ChainCache
    public let replay: any ReplayStore
    let proofHeaders: ProofHeaderCache
    let policy: RoutePolicy
    let upstreamHeaders: UpstreamHeaders
    /// Normalised `scheme://host[:port]` of public_origin.
    let publicOrigin: String
    let limits: CompactJWS.Limits
    let metadata: ProtectedResourceMetadata
    let credentialLimits = PresentedCredential.Limits()
    /// Proofs issued before `until` may be in the replay store with a shorter retention than
    /// this configuration's: they are judged by the shorter `maxAge` (after a reload that raised
    /// dpop_max_age, the store may already have forgotten them).
    struct ReplayHandover: Sendable { var until: Int64; var maxAge: Int64 }
    let handover: ReplayHandover?

    /// What the pipeline fetches from the network, made by the server (libcurl) for a config:
    /// did:web documents, and each OAuth issuer's keys. Without them, neither resolves.
    public struct Resolvers: Sendable {
        public var didWeb: DIDWebResolver?
        public var issuers: [IssuerKeys]
        public var introspector: Introspector?
        /// Signs a Txn-Token for each forwarded request (its keys are read by the CLI).
        public var txnTokens: TxnTokenIssuer?
        /// Asks principals to approve requests on `effect approve` routes (without it, 403 approval_required).
        public var approvals: (any ApprovalGate)?
        /// The agent registry's principals, suspensions and revocations (kept across a reload).
        public var registry: (any RevocationState)?
        public init(didWeb: DIDWebResolver? = nil, issuers: [IssuerKeys] = [], introspector: Introspector? = nil,
                    txnTokens: TxnTokenIssuer? = nil, approvals: (any ApprovalGate)? = nil, registry: (any RevocationState)? = nil) {
            self.didWeb = didWeb; self.issuers = issuers; self.introspector = introspector; self.txnTokens = txnTokens
            self.approvals = approvals; self.registry = registry
        }
    }

    public convenience init(config: ProxyConfig, replay: (any ReplayStore)? = nil, resolvers: Resolvers = Resolvers()) throws(Reason) {
        try self.init(config: config, replay: replay, handover: nil, resolvers: resolvers)
    }

    public let resolvers: Resolvers
    /// Chain-cache lookups (hits, misses), for /metrics.
    public var chainCacheCounts: (hits: Int, misses: Int) {
        (chains.hits.load(ordering: .relaxed), chains.misses.load(ordering: .relaxed))
    }
    let accessTokens: AccessTokenRules

    /// The verifier for a reloaded configuration: same replay store, and never a wider replay
    /// window for proofs the store may have dropped.
    /// `resolvers`: for `next` (the running ones where their settings did not change).
    public func successor(config next: ProxyConfig, now: Int64, resolvers: Resolvers = Resolvers()) throws(Reason) -> Verifier {
        var h = handover
        if next.dpopMaxAge > config.dpopMaxAge {
            let until = now + config.dpopFutureSkew + 1
            h = ReplayHandover(until: max(h?.until ?? until, until), maxAge: min(h?.maxAge ?? config.dpopMaxAge, config.dpopMaxAge))
        }
        return try Verifier(config: next, replay: replay, handover: h, resolvers: resolvers)
    }

    init(config: ProxyConfig, replay: (any ReplayStore)?, handover: ReplayHandover?, resolvers: Resolvers) throws(Reason) {
        self.handover = handover
        self.resolvers = resolvers
        guard let origin = HTU.normalizeOrigin(config.publicOrigin) else {
            throw Reason("public_origin must be an http(s) origin without a path: \(config.publicOrigin)")
        }
        self.config = config
        publicOrigin = origin
        metadata = ProtectedResourceMetadata(config: config, resource: origin)
        limits = CompactJWS.Limits()
        walker = ChainWalker(rules: .init(principals: Set(config.principals.map(\.did)),
                                          organizations: Dictionary(config.organizations.map { ($0.did, $0) }) { a, _ in a },
                                          audience: config.effectiveAudience,
                                          maxChainLength: config.maxChainLength, clockSkew: config.clockSkew,
                                          maxLifetime: config.maxDelegationLifetime, limits: limits),
                             dids: DIDCache(web: resolvers.didWeb))
        let keys = Dictionary(resolvers.issuers.map { ($0.issuer, $0) }) { a, _ in a }
        accessTokens = AccessTokenRules(
            issuers: config.oauthIssuers.compactMap { i in keys[i.issuer].map { AccessTokenRules.Issuer(settings: i, keys: $0) } },
            defaultAudience: config.effectiveAudience, clockSkew: config.clockSkew, limits: limits)
        chains = ChainCache(capacity: config.chainCacheSize)
        self.replay = replay ?? MemoryReplayCache(capacity: config.replayCacheSize)
        proofHeaders = ProofHeaderCache()
        policy = RoutePolicy(routes: config.routes)
        upstreamHeaders = UpstreamHeaders(trustedProxies: try TrustedProxies(config.trustedProxies))
    }

    public func admit(_ head: HTTPRequestHead, peer: Peer, requestID: String, now: Int64) -> Admission {
        if head.path.utf8.elementsEqual(ProtectedResourceMetadata.path.utf8) { return .answer(metadata.answer(method: head.method)) }
        switch verify(head, certificate: peer.certificate, now: now) {
        case .failure(let refusal):
            if let r = refusal.wait { return .wait(r) }
            return .refuse(refusal.denial, refusal.facts)
        case .success(let v):
            var target = v.path
            if let q = head.query { target += "?" + q }
            var headers = upstreamHeaders.rewrite(head, chain: v.chain, requestID: requestID, peer: peer.address,
                                                  scheme: peer.tls ? "https" : "http")
            if let t = resolvers.txnTokens {
                headers.append(HTTPHeader("Txn-Token", t.token(chain: v.chain, requestID: requestID, peer: peer.address, now: now)))
            }
            let plan = ForwardPlan(target: target, headers: headers, facts: v.facts, bodyDigest: v.bodyDigest)
            guard let route = v.approvalRoute, let gate = resolvers.approvals else { return .forward(plan) }
            let ids = head.values("Approval-Id")
            guard ids.count <= 1, ids.first.map({ ApprovalHold.isID($0) }) ?? true else {
                return .refuse(Denial(.invalidRequest, "Approval-Id must be sent at most once, as the id the proxy gave"), v.facts)
            }
            var request = ApprovalRequest(principal: v.chain.principal, organization: v.chain.organization, agent: v.chain.agent,
                                          chain: v.chain.dids, jtis: v.chain.jtis, method: head.method,
                                          url: publicOrigin + target, route: route.prefix)
            request.agentName = resolvers.registry?.current().agentNames[v.chain.agent]
            return .hold(ApprovalHold(plan: plan, request: request, id: ids.first.map { String($0) },
                                      wait: route.approvalWait ?? config.approvalWait, maxBody: min(config.clientMaxBodySize, ApprovalHold.maxHeldBody), gate: gate,
                                      recheck: stillHonoured(v.chain)))
        }
    }

    /// What a held request is judged by again when it wakes: the registry as it is then (a
    /// revocation or suspension since it was admitted), and the chain's expiry.
    func stillHonoured(_ chain: VerifiedChain) -> @Sendable (Int64) -> Denial? {
        let registry = resolvers.registry, skew = config.clockSkew, metadata = metadata.url
        return { now in
            var d: Denial?
            if now >= chain.expiresAt + skew { d = Denial(.invalidToken, "delegation expired while the request was held for approval") }
            d = d ?? registry?.current().refusal(for: chain)
            d?.resourceMetadata = metadata
            return d
        }
    }

    public struct Verified: Sendable {
        public var chain: VerifiedChain
        public var path: String
        public var facts: AuditFacts
        public var bodyDigest: ContentDigest? = nil
        /// The route needs the principal's approval, and an approval service will ask them.
        public var approvalRoute: ProxyConfig.Route? = nil
    }

    public struct Refusal: Error, Sendable {
        public var denial: Denial
        public var facts: AuditFacts
        /// Set when the answer is not yet known: ready once a DID document is fetched.
        public var wait: Readiness? = nil
    }

    func maxAge(forIssuedAt iat: Int64) -> Int64 {
        if let h = handover, iat < h.until { return min(h.maxAge, config.dpopMaxAge) }
        return config.dpopMaxAge
    }

    /// Every check, without building the upstream request (the benchmarks call this).
    /// `certificate`: the connection's verified client certificate, if any (RFC 8705).
    public func verify(_ head: HTTPRequestHead, certificate: ClientCertificate? = nil, now: Int64) -> Result<Verified, Refusal> {
        func refuse(_ d: Denial, _ facts: AuditFacts = AuditFacts()) -> Result<Verified, Refusal> {
            var d = d
            d.resourceMetadata = metadata.url
            // Bearer can succeed with a client certificate, or with an OAuth access token.
            d.acceptsBearer = certificate != nil || !accessTokens.issuers.isEmpty
            return .failure(Refusal(denial: d, facts: facts))
        }
        // The path policy decides on, and the upstream sees.
        let path: String
        switch PathNormalizer.normalize(head.path.utf8, .policy) {
        case .success(let p): path = p
        case .failure(let r): return refuse(Denial(.invalidRequest, r.description))
        }
        // 1. Parse the credential.
        let credential: PresentedCredential
        switch PresentedCredential.extract(from: head, limits: credentialLimits) {
        case .success(let c): credential = c
        case .failure(let d): return refuse(d)
        }
        // 2. Proof of possession, the checks that need only the request: the DPoP proof
        // (RFC 9449 §4.3), or a client certificate to bind a Bearer leaf to (RFC 8705 §3).
        let leafHash = SHA256.hash(credential.leaf)
        var proof: DPoPProof?
        var signature: MessageSignature?
        var bodyDigest: ContentDigest?
        switch credential.scheme {
        case .dpop where credential.signed:
            switch signedRequestChecks(head, now: now) {
            case .success(let (s, d)): signature = s; bodyDigest = d
            case .failure(let d): return refuse(d)
            }
        case .dpop:
            let p: DPoPProof
            switch DPoPProof.parse(credential.proof, limits: limits, headers: proofHeaders) {
            case .success(let parsed): p = parsed
            case .failure(let r): return refuse(Denial(.invalidDPoPProof, r.text))
            }
            let rawPath = head.path
            let publicURI = publicOrigin + (sameBytes(String(rawPath), path) ? path : HTU.normalizePath(rawPath) ?? path)
            if let r = DPoPRules.methodMatches(p, method: head.method)
                ?? DPoPRules.uriMatches(p, publicURI: publicURI)
                ?? DPoPRules.freshness(p, now: now, maxAge: maxAge(forIssuedAt: p.iat), futureSkew: config.dpopFutureSkew)
                ?? DPoPRules.tokenHashMatches(p, tokenHash: leafHash) {
                return refuse(Denial(.invalidDPoPProof, r.text))
            }
            proof = p
        case .bearer:
            // Bearer is for certificate-bound tokens, and for OAuth access tokens on routes that allow them.
            guard certificate != nil || !accessTokens.issuers.isEmpty else {
                return refuse(Denial(.invalidToken, "the Bearer scheme is accepted only for a delegation bound to the client certificate, over mutual TLS; use DPoP"))
            }
        }
        // 3. Walk the chain to the human principal, unless this exact chain was verified before.
        // The registry view is read once per request: the one that judges the chain in step 4½.
        let registry = resolvers.registry?.current()
        let key = ChainCache.Key(leafHash)
        let chain: VerifiedChain
        // A chain resting on fetched DID documents is walked again once they may have changed.
        if let hit = chains.lookup(key, ancestry: credential.ancestry), now < hit.resolvedUntil ?? .max {
            if now >= hit.expiresAt + config.clockSkew { return refuse(Denial(.invalidToken, "delegation expired")) }
            if hit.notBefore > now + config.clockSkew { return refuse(Denial(.invalidToken, "delegation not yet valid")) }
            chain = hit
        } else {
            // An OAuth access token (RFC 9068 typ at+jwt) stands alone; anything else is a delegation.
            // An opaque token (not shaped as a JWS) goes to the introspection endpoint, if any.
            let outcome: ChainWalker.Outcome
            let split = CompactJWS.split(credential.leaf, limits: limits)
            let segments = try? split.get()
            let header = segments.flatMap { try? CompactJWS.header($0.header).get().0 }
            // Opaque means not three segments; an oversized JWS is refused, not sent to the AS.
            var opaque = false
            if case .failure(.notCompactJWS) = split { opaque = resolvers.introspector != nil }
            if !accessTokens.issuers.isEmpty, opaque || header.map(AccessTokenRules.isAccessToken) == true {
                guard credential.ancestors.isEmpty else {
                    return refuse(Denial(.invalidRequest, "Agent-Delegation is for delegation chains, not with an access token"))
                }
                outcome = opaque ? resolvers.introspector!.lookup(credential.leaf, now: now) : accessTokens.verify(credential.leaf, now: now)
            } else {
                // A revoked registry principal's chain is walked too, so that the refusal (step
                // 4½) says it was revoked, not that its principal is unknown.
                let anchors = registry.map { $0.revokedPrincipals.isEmpty ? $0.anchors : $0.anchors.union($0.revokedPrincipals) } ?? []
                outcome = walker.walk(credential.ancestors + [credential.leaf], ancestry: credential.ancestry, now: now,
                                      anchors: anchors)
            }
            switch outcome {
            case .verified(let c): chain = c
            case .refused(let d): return refuse(d)
            case .pending(let r):
                // Not a refusal the server sends: it asks again when the fetch is done. A caller
                // that cannot wait answers this 503.
                var d = Denial(.temporarilyUnavailable, "a DID or an issuer's keys are being fetched; retry shortly")
                d.retryAfter = 1
                return .failure(Refusal(denial: d, facts: AuditFacts(), wait: r))
            }
            chains.store(key, chain, now: now)
        }
        // 4. The caller holds the agent's key. Until that is shown, the chain is only claimed:
        // its identities stay out of the log.
        if let signature {
            if let d = signatureProvesPossession(signature, head, chain: chain, now: now) { return refuse(d) }
        } else if let proof {
            if chain.certificateThumbprint != nil {
                return refuse(Denial(.invalidToken, "the token is bound to a client certificate (cnf x5t#S256); present it with Authorization: Bearer over mutual TLS"))
            }
            if chain.proofKeyThumbprint.isEmpty {
                return refuse(Denial(.invalidToken, "the access token is not DPoP-bound (no cnf.jkt); send it as Bearer where the route allows"))
            }
            if let r = DPoPRules.keyIsBound(proof, jkt: chain.proofKeyThumbprint) {
                return refuse(Denial(.invalidDPoPProof, r.text))
            }
            guard proof.verifySignature() else {
                return refuse(Denial(.invalidDPoPProof, "DPoP proof signature does not verify"))
            }
            switch replay.claim(ReplayKey(thumbprint: proof.thumbprint, jti: proof.jti),
                                expiresAt: proof.iat + config.dpopMaxAge + 1, now: now) {
            case .fresh: break
            case .replayed: return refuse(Denial(.invalidDPoPProof, "DPoP proof jti has already been used"))
            case .full:
                var d = Denial(.temporarilyUnavailable, "replay cache is full; retry shortly")
                d.retryAfter = 1
                return refuse(d)
            }
        } else if chain.senderConstrained, let r = CertificateBinding.check(chain, certificate) {
            return refuse(Denial(.invalidToken, r.text))
        }
        var facts = AuditFacts(principal: chain.principal, agent: chain.agent, chain: chain.dids,
                               scope: chain.scopeText, organization: chain.organization, issuer: chain.issuer)
        facts.jtis = chain.jtis
        facts.proof = signature != nil ? "rfc9421" : proof != nil ? "dpop" : chain.certificateThumbprint != nil ? "mtls" : "bearer"
        // 4½. The registry: a suspension or revocation holds from the very next request, for a
        // cached chain as for one just walked.
        if let registry, let d = registry.refusal(for: chain) { return refuse(d, facts) }
        // 5. Policy, for a caller now proven to hold the chain (or, for a plain Bearer access
        // token, only to have it: the route must accept that).
        let (route, denial) = policy.decide(method: head.method, path: path, chain: chain)
        facts.route = route.map { $0.prefix }
        if let route, !chain.senderConstrained, !route.allowBearer {
            return refuse(Denial(.invalidToken, "this route needs a sender-constrained token (DPoP or mutual TLS); a plain Bearer access token is not accepted here"), facts)
        }
        if let denial {
            guard denial.code == .approvalRequired, resolvers.approvals != nil, let route else { return refuse(denial, facts) }
            return .success(Verified(chain: chain, path: path, facts: facts, bodyDigest: bodyDigest, approvalRoute: route))
        }
        return .success(Verified(chain: chain, path: path, facts: facts, bodyDigest: bodyDigest))
    }

    /// RFC 9421 checks that need only the request: one signature, covering what pins this
    /// request, fresh, with a nonce; and the body's expected digest (RFC 9530).
    func signedRequestChecks(_ head: HTTPRequestHead, now: Int64) -> Result<(MessageSignature, ContentDigest?), Denial> {
        let inputs = head.values("Signature-Input"), sigs = head.values("Signature")
        guard inputs.count == 1, sigs.count == 1 else {
            return .failure(Denial(.invalidSignature, "send Signature-Input and Signature once each"))
        }
        let s: MessageSignature
        switch MessageSignature.parse(input: String(inputs[0]), signature: String(sigs[0])) {
        case .success(let parsed): s = parsed
        case .failure(let r): return .failure(Denial(.invalidSignature, r.text))
        }
        guard s.nonce != nil else { return .failure(Denial(.invalidSignature, "nonce is required (it is single use)")) }
        let hasBody: Bool
        switch head.framing {
        case .none, .length(0): hasBody = false
        default: hasBody = true
        }
        if let missing = s.missingCoverage(head, hasBody: hasBody) {
            return .failure(Denial(.invalidSignature, "the signature must cover \(missing)"))
        }
        if s.created < now - maxAge(forIssuedAt: s.created) { return .failure(Denial(.invalidSignature, "the signature is too old (created)")) }
        if s.created > now + config.dpopFutureSkew { return .failure(Denial(.invalidSignature, "the signature is from the future (created)")) }
        if let e = s.expires, e <= now { return .failure(Denial(.invalidSignature, "the signature has expired")) }
        var digest: ContentDigest?
        if hasBody {
            let fields = head.values("Content-Digest")
            guard fields.count == 1 else { return .failure(Denial(.invalidRequest, "a signed body needs one Content-Digest field")) }
            switch ContentDigest.parse(String(fields[0])) {
            case .success(let d): digest = d
            case .failure(let r): return .failure(Denial(.invalidRequest, r.text))
            }
        }
        return .success((s, digest))
    }

    /// The signature is by the key the leaf is bound to (cnf.jkt), named by `keyid` as that
    /// thumbprint or as the agent's verification method; then the nonce is spent.
    func signatureProvesPossession(_ s: MessageSignature, _ head: HTTPRequestHead, chain: VerifiedChain, now: Int64) -> Denial? {
        if chain.certificateThumbprint != nil {
            return Denial(.invalidToken, "the token is bound to a client certificate (cnf x5t#S256); present it with Authorization: Bearer over mutual TLS")
        }
        guard !chain.proofKeyThumbprint.isEmpty else { return Denial(.invalidToken, "the token is not bound to a key (no cnf.jkt)") }
        guard case .resolved(let doc, _) = walker.dids.lookup(chain.agent),
              let method = doc.methods.first(where: {
                  $0.authentication && $0.thumbprint == chain.proofKeyThumbprint
                      && (sameBytes(s.keyID, chain.proofKeyThumbprint) || sameBytes(s.keyID, $0.id))
              }) else {
            return Denial(.invalidSignature, "keyid does not name the key the token is bound to")
        }
        let authority = String(publicOrigin.drop { $0 != ":" }.dropFirst(3))
        let scheme = String(publicOrigin.prefix { $0 != ":" })
        switch s.base(head, scheme: scheme, authority: authority) {
        case .failure(let r): return Denial(.invalidSignature, r.text)
        case .success(let base):
            guard s.verify(base, with: method.key) else { return Denial(.invalidSignature, "the HTTP message signature does not verify") }
        }
        switch replay.claim(ReplayKey(thumbprint: chain.proofKeyThumbprint, jti: "rfc9421:" + s.nonce!),
                            expiresAt: s.created + config.dpopMaxAge + 1, now: now) {
        case .fresh: return nil
        case .replayed: return Denial(.invalidSignature, "the signature's nonce has already been used")
        case .full:
            var d = Denial(.temporarilyUnavailable, "replay cache is full; retry shortly")
            d.retryAfter = 1
            return d
        }
    }
}
