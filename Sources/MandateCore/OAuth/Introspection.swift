import MandateCrypto
import Synchronization

/// POSTs a form with HTTP Basic client authentication (the server's libcurl implementation).
public protocol FormPoster: Sendable {
    /// Calls `done` exactly once, on any thread, with the status and body, or why there are none.
    func post(_ url: String, form: String, user: String, password: String,
              done: @escaping @Sendable (Result<(status: Int, body: [UInt8]), Reason>) -> Void)
}

/// Opaque access tokens, through the issuer's RFC 7662 introspection endpoint: the proxy
/// authenticates as a client (client_secret_basic, RFC 6749 §2.3.1). Answers are cached by the
/// token's SHA-256 (one introspector per endpoint and settings), an active one no longer than
/// its `exp` or `cache`, an inactive one `negativeTTL`; one request per token at a time, and at
/// most `maxInFlight` at once (clients pick the tokens: a flood of random ones gets 503s, not a
/// flood of requests). Any failure to get an answer is a 503: never a token taken on trust.
public final class Introspector: Sendable {
    enum Entry {
        case active(VerifiedChain, until: Int64)
        case inactive(String, until: Int64)
        /// No answer: 503 for a second, then asked again.
        case failed(String, until: Int64)
        case asking(Readiness)
    }

    public let settings: ProxyConfig.OAuthIssuer
    let introspection: ProxyConfig.Introspection
    let audience: String
    private let poster: any FormPoster
    private let clock: @Sendable () -> Double
    struct State {
        var entries: [ChainCache.Key: Entry] = [:]
        /// Requests to the endpoint not yet answered.
        var asking = 0
    }
    private let state = Mutex(State())
    public static let maxEntries = 100_000
    public static let maxInFlight = 16
    static let negativeTTL: Int64 = 10

    public init?(settings: ProxyConfig.OAuthIssuer, defaultAudience: String, poster: any FormPoster,
                 clock: @escaping @Sendable () -> Double) {
        guard let i = settings.introspection else { return nil }
        self.settings = settings; introspection = i; audience = settings.audience ?? defaultAudience
        self.poster = poster; self.clock = clock
    }

    /// For /metrics: tokens answered from the cache, and introspections started.
    public let hits = Atomic<Int>(0), asked = Atomic<Int>(0)

    public func lookup(_ token: ArraySlice<UInt8>, now: Int64) -> ChainWalker.Outcome {
        let key = ChainCache.Key(SHA256.hash(token))
        let (asking, busy): (Readiness?, Bool) = state.withLock { st in
            switch st.entries[key] {
            case .active(_, let until)? where until > now: return (nil, false)
            case .inactive(_, let until)? where until > now: return (nil, false)
            case .failed(_, let until)? where until > now: return (nil, false)
            case .asking?: return (nil, false)
            default:
                guard st.asking < Self.maxInFlight else { return (nil, true) }
                if st.entries.count >= Self.maxEntries {
                    st.entries = st.entries.filter { if case .asking = $0.value { true } else { false } }
                }
                let r = Readiness()
                st.entries[key] = .asking(r)
                st.asking += 1
                return (r, false)
            }
        }
        if busy {
            var d = Denial(.temporarilyUnavailable, "access token: too many introspections in flight; retry shortly")
            d.retryAfter = 1
            return .refused(d)
        }
        if let asking {
            asked.add(1, ordering: .relaxed)
            ask(String(decoding: token, as: UTF8.self), key, asking)
            return .pending(asking)
        }
        hits.add(1, ordering: .relaxed)
        switch state.withLock({ $0.entries[key] }) {
        case .active(let chain, _)?: return .verified(chain)
        case .inactive(let why, _)?: return .refused(Denial(.invalidToken, "access token: " + why))
        case .failed(let why, _)?:
            var d = Denial(.temporarilyUnavailable, "access token: introspection failed (\(why)); retry shortly")
            d.retryAfter = 1
            return .refused(d)
        case .asking(let r)?: return .pending(r)
        case nil: return .refused(Denial(.invalidToken, "access token: not introspected"))
        }
    }

    private func ask(_ token: String, _ key: ChainCache.Key, _ readiness: Readiness) {
        let form = "token=" + Self.formEncode(token) + "&token_type_hint=access_token"
        poster.post(introspection.endpoint, form: form, user: Self.formEncode(introspection.clientID),
                    password: Self.formEncode(introspection.clientSecret)) { [self] result in
            let now = Int64(clock())
            let entry: Entry
            switch result {
            case .success(let r) where r.status == 200:
                entry = judge(r.body, now: now) ?? .failed("the answer is not an RFC 7662 response", until: now + 1)
            case .success(let r): entry = .failed("HTTP \(r.status)", until: now + 1)
            case .failure(let why): entry = .failed(why.text, until: now + 1)
            }
            state.withLock { st in
                st.entries[key] = entry
                st.asking -= 1
            }
            readiness.fire()
        }
    }

    /// RFC 7662 §2.2: `active` decides; then the same claims as a JWT access token.
    func judge(_ body: [UInt8], now: Int64) -> Entry? {
        guard case .success(let c) = StrictJSON.parseObject(body), case .bool(let active)? = c["active"] else { return nil }
        guard active else { return .inactive("the token is not active", until: now + Self.negativeTTL) }
        func inactive(_ why: String) -> Entry { .inactive(why, until: now + Self.negativeTTL) }
        if let iss = c["iss"] { guard iss.string.map({ sameBytes($0, settings.issuer) }) == true else { return inactive("iss is not \(settings.issuer)") } }
        if let aud = c["aud"] {
            let ok: Bool
            switch aud {
            case .string(let a): ok = sameBytes(a, audience)
            case .array(let l): ok = l.contains { $0.string.map { sameBytes($0, audience) } ?? false }
            default: ok = false
            }
            guard ok else { return inactive("aud does not include \(audience)") }
        }
        // RFC 7662 §2.2: a token not yet valid is not usable either (30 s of skew, as for delegations).
        switch numericDate(c, "nbf") {
        case .present(let nbf) where nbf > now + 30: return inactive("not yet valid (nbf)")
        case .invalid: return inactive("nbf must be a NumericDate")
        default: break
        }
        var until = now + Int64(introspection.cache)
        switch numericDate(c, "exp") {
        case .present(let exp):
            guard exp > now else { return inactive("expired") }
            until = min(until, exp)
        case .invalid: return inactive("exp must be a NumericDate")  // else cached for all of `cache`
        case .absent: break
        }
        switch AccessTokenRules.identity(c, settings: settings, requireClient: false) {
        case .failure(let r): return inactive(r.text)
        case .success(let who):
            return .active(who.chain(issuer: settings.issuer, notBefore: now, expiresAt: until, reverifyAt: until), until: until)
        }
    }

    /// application/x-www-form-urlencoded (RFC 6749 Appendix B), with a space as %20: some
    /// servers decode Basic credentials with a plain percent-decoder, which keeps a '+'.
    static func formEncode(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "*"):
                out.unicodeScalars.append(UnicodeScalar(b))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                out += "%" + String(decoding: [hex[Int(b >> 4)], hex[Int(b & 15)]], as: UTF8.self)
            }
        }
        return out
    }
}
