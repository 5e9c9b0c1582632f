import Synchronization

/// One authorization server's signing keys: its metadata (RFC 8414, else OpenID Connect
/// Discovery) names `jwks_uri`, whose JWKS (RFC 7517 §5) holds them, by `kid`.
/// - The first request waits for the first fetch; after `refresh` a request triggers a fetch in
///   the background and is served the keys in hand.
/// - An unknown `kid` refetches at most once per `kidCooldown`, however many requests carry one.
/// - A failed fetch keeps the last keys (the server may be down); with none, requests get 503
///   until `kidCooldown` passes.
public final class IssuerKeys: Sendable {
    public struct Settings: Sendable, Equatable {
        public var refresh: Double = 300
        public var kidCooldown: Double = 30
        public init() {}
    }

    public enum Lookup: Sendable {
        case key(VerificationKey)
        case unknownKid
        case unavailable(String)
        case pending(Readiness)
    }

    struct State {
        var keys: [String: VerificationKey]?
        var fetchedAt = 0.0
        var attemptedAt = -Double.infinity
        var failure = ""
        var inFlight: Readiness?
    }

    public let issuer: String
    let jwksURI: String?
    let settings: Settings
    private let fetcher: any DocumentFetcher
    private let clock: @Sendable () -> Double
    private let state = Mutex(State())

    /// `jwksURI`: configured, else discovered from the issuer's metadata.
    public init(issuer: String, jwksURI: String?, settings: Settings, fetcher: any DocumentFetcher,
                clock: @escaping @Sendable () -> Double) {
        self.issuer = issuer; self.jwksURI = jwksURI; self.settings = settings; self.fetcher = fetcher; self.clock = clock
    }

    public func key(_ kid: String) -> Lookup {
        let now = clock()
        let s = settings
        let (lookup, start): (Lookup, Readiness?) = state.withLock { st in
            func fetch() -> Readiness {
                let r = Readiness()
                st.inFlight = r
                st.attemptedAt = now
                return r
            }
            guard let keys = st.keys else {
                if let r = st.inFlight { return (.pending(r), nil) }
                if now - st.attemptedAt < s.kidCooldown {
                    return (.unavailable("the authorization server's keys are not available (\(st.failure))"), nil)
                }
                let r = fetch()
                return (.pending(r), r)
            }
            if let k = keys[kid] {
                // Before expiry, in the background: this request does not wait for it.
                if now - st.fetchedAt >= s.refresh, st.inFlight == nil, now - st.attemptedAt >= s.kidCooldown {
                    return (.key(k), fetch())
                }
                return (.key(k), nil)
            }
            if let r = st.inFlight { return (.pending(r), nil) }
            guard now - st.attemptedAt >= s.kidCooldown else { return (.unknownKid, nil) }
            let r = fetch()
            return (.pending(r), r)
        }
        if let start { load(start) }
        return lookup
    }

    /// Metadata (unless jwks_uri is configured), then the JWKS.
    private func load(_ readiness: Readiness) {
        if let jwksURI { fetchJWKS(jwksURI, readiness); return }
        discover(Self.metadataURLs(issuer)[...], [], readiness)
    }

    private func discover(_ candidates: ArraySlice<String>, _ failures: [String], _ readiness: Readiness) {
        guard let url = candidates.first else { finish(.failure(Reason(failures.joined(separator: "; "))), readiness); return }
        fetcher.fetch(url) { [self] result in
            switch result.flatMap({ Self.jwksURI(metadata: $0, issuer: issuer) }) {
            case .success(let uri): fetchJWKS(uri, readiness)
            case .failure(let r): discover(candidates.dropFirst(), failures + [r.text], readiness)
            }
        }
    }

    private func fetchJWKS(_ uri: String, _ readiness: Readiness) {
        fetcher.fetch(uri) { [self] result in finish(result.flatMap(Self.jwks), readiness) }
    }

    private func finish(_ result: Result<[String: VerificationKey], Reason>, _ readiness: Readiness) {
        let now = clock()
        state.withLock { st in
            st.inFlight = nil
            switch result {
            case .success(let keys): st.keys = keys; st.fetchedAt = now; st.failure = ""
            case .failure(let r): st.failure = r.text  // the last keys stay
            }
        }
        readiness.fire()
    }

    /// RFC 8414 §3.1 (the well-known suffix goes between host and path), then OpenID Connect
    /// Discovery 1.0 §4 (appended to the issuer).
    static func metadataURLs(_ issuer: String) -> [String] {
        let trimmed = issuer.hasSuffix("/") ? String(issuer.dropLast()) : issuer
        let afterScheme = trimmed.dropFirst("https://".count)
        let host = afterScheme.prefix { $0 != "/" }
        let path = afterScheme.dropFirst(host.count)
        return ["https://\(host)/.well-known/oauth-authorization-server\(path)", trimmed + "/.well-known/openid-configuration"]
    }

    /// RFC 8414 §3.3: the metadata's issuer must be the one asked for.
    static func jwksURI(metadata: [UInt8], issuer: String) -> Result<String, Reason> {
        guard case .success(let m) = StrictJSON.parseObject(metadata) else { return .failure(Reason("metadata is not a JSON object")) }
        guard let iss = m["issuer"]?.string, sameBytes(iss, issuer) else {
            return .failure(Reason("metadata issuer is not \(issuer)"))
        }
        guard let uri = m["jwks_uri"]?.string, uri.hasPrefix("https://") else {
            return .failure(Reason("metadata has no https jwks_uri"))
        }
        return .success(uri)
    }

    public static let maxKeys = 100

    /// Signing keys by kid. Keys of other types, or for encryption, are skipped; a kid
    /// given twice refuses the whole set (which key would it be?).
    static func jwks(_ bytes: [UInt8]) -> Result<[String: VerificationKey], Reason> {
        guard case .success(let o) = StrictJSON.parseObject(bytes), let list = o["keys"]?.array else {
            return .failure(Reason("the JWKS is not a JSON object with keys"))
        }
        guard list.count <= maxKeys else { return .failure(Reason("the JWKS has over \(maxKeys) keys")) }
        var keys: [String: VerificationKey] = [:]
        var seen: Set<String> = []
        for item in list {
            guard let jwk = item.object, let kid = jwk["kid"]?.string else { continue }
            guard seen.insert(kid).inserted else { return .failure(Reason("the JWKS has kid \(kid) twice")) }
            if let use = jwk["use"]?.string, use != "sig" { continue }
            if case .success(let k) = JWK.publicKey(jwk, allowRSA: true) { keys[kid] = k }
        }
        return .success(keys)
    }
}
