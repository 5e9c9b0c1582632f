import Synchronization

/// A one-shot signal that work a request waits on (a did:web fetch) is done. The pipeline
/// returns it instead of blocking; the server asks again once it fires.
public final class Readiness: Sendable {
    private let state = Mutex<(done: Bool, waiters: [@Sendable () -> Void])>((false, []))

    public init() {}

    /// Runs `f` once done: at once if it already is, else on the thread that finishes the work.
    public func whenReady(_ f: @escaping @Sendable () -> Void) {
        let ready = state.withLock { s in
            if !s.done { s.waiters.append(f) }
            return s.done
        }
        if ready { f() }
    }

    public func fire() {
        let waiters = state.withLock { s in
            s.done = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for f in waiters { f() }
    }
}

/// Fetches a did:web document: HTTPS with verified TLS, bounded in size and time, no redirect
/// to another origin, no private address unless allowed (the server's libcurl implementation).
public protocol DocumentFetcher: Sendable {
    /// Calls `done` exactly once, on any thread, with the body of a 200 response or why not.
    func fetch(_ url: String, done: @escaping @Sendable (Result<[UInt8], Reason>) -> Void)
}

/// did:web documents, cached (DID Core leaves caching to the resolver):
/// - fresh for `ttl`; then fetched again, and while that fetch fails the old document serves
///   for up to `maxStale` more (stale-on-error);
/// - one fetch per DID at a time, however many requests wait for it (single flight);
/// - a failure with nothing stale to serve is remembered for `negativeTTL` (no fetch meanwhile);
/// - a `kid` the document lacks refetches it at most once per `kidCooldown`;
/// - fetches start at most `fetchesPerSecond` (burst `burst`), `maxInFlight` at once: a flood
///   of unknown DIDs is refused (503), not turned into a flood of fetches.
/// Bounded: `maxEntries` DIDs, each about 1 KB (its keys) plus the DID text.
public final class DIDWebResolver: Sendable {
    public struct Settings: Sendable, Equatable {
        public var ttl: Double = 300
        public var maxStale: Double = 3600
        public var negativeTTL: Double = 30
        public var kidCooldown: Double = 30
        public var fetchesPerSecond: Double = 10
        public var burst: Double = 20
        public var maxInFlight = 16
        public var maxEntries = 10_000
        public init() {}
    }

    public enum Lookup: Sendable {
        /// `until`: Unix seconds after which a chain built on it must be walked again.
        case document(DIDDocument, until: Int64)
        /// `temporary`: worth retrying shortly (503), else the DID does not resolve (401).
        case failed(String, temporary: Bool)
        case pending(Readiness)
    }

    struct Entry {
        var document: DIDDocument?
        var fetchedAt = 0.0
        var failedUntil = 0.0
        var failure = ""
        var failureTemporary = false
        var inFlight: Readiness?
    }

    struct State {
        var entries: [String: Entry] = [:]
        var tokens: Double
        var refilledAt = 0.0
        var inFlight = 0
    }

    public let settings: Settings
    private let fetcher: any DocumentFetcher
    private let clock: @Sendable () -> Double
    private let state: Mutex<State>

    /// `clock`: Unix seconds (tests pass their own).
    public init(fetcher: any DocumentFetcher, settings: Settings = Settings(), clock: @escaping @Sendable () -> Double) {
        self.fetcher = fetcher; self.settings = settings; self.clock = clock
        state = Mutex(State(tokens: settings.burst))
    }

    /// For /metrics: lookups answered by a fresh cached document, and fetches started.
    public let hits = Atomic<Int>(0), fetches = Atomic<Int>(0)

    /// The document of `did`; `missingKid` says the cached one lacked a key the caller needs.
    public func lookup(_ did: String, missingKid: Bool = false) -> Lookup {
        let url: String
        switch DIDWeb.url(for: did) {
        case .success(let u): url = u
        case .failure(let e): return .failed(e.description, temporary: false)
        }
        let now = clock()
        let s = settings
        let (lookup, start): (Lookup, Readiness?) = state.withLock { st in
            var e = st.entries[did] ?? Entry()
            func served(_ until: Double) -> Lookup { .document(e.document!, until: Int64(until)) }
            let age = now - e.fetchedAt
            if e.document != nil && age < s.ttl && !(missingKid && age >= s.kidCooldown) {
                hits.add(1, ordering: .relaxed)
                return (served(e.fetchedAt + s.ttl), nil)
            }
            if let r = e.inFlight { return (.pending(r), nil) }
            let stale = e.document != nil && age < s.ttl + s.maxStale
            if now < e.failedUntil {
                return (stale ? served(e.failedUntil) : .failed("did:web \(e.failure)", temporary: e.failureTemporary), nil)
            }
            if missingKid && e.document != nil && age < s.kidCooldown {
                return (served(e.fetchedAt + s.ttl), nil)  // the document is recent: the kid is not in it
            }
            // A fetch, if the budget allows one.
            // The clock is the wall clock: a step back must not drive the budget negative for as long.
            st.tokens = min(s.burst, st.tokens + max(0, now - st.refilledAt) * s.fetchesPerSecond)
            st.refilledAt = now
            guard st.tokens >= 1, st.inFlight < s.maxInFlight else {
                return (stale ? served(now + 1) : .failed("did:web fetches are rate-limited; retry shortly", temporary: true), nil)
            }
            if st.entries[did] == nil && st.entries.count >= s.maxEntries {
                // Failures go first: a flood of DIDs that do not resolve must not push out the
                // documents honest chains rest on (nor their stale copies).
                st.entries = st.entries.filter { $0.value.inFlight != nil || $0.value.document != nil }
                if st.entries.count >= s.maxEntries { st.entries = st.entries.filter { $0.value.inFlight != nil } }
            }
            st.tokens -= 1
            st.inFlight += 1
            fetches.add(1, ordering: .relaxed)
            let r = Readiness()
            e.inFlight = r
            st.entries[did] = e
            return (.pending(r), r)
        }
        if let start {
            fetcher.fetch(url) { [self] result in complete(did, result, start) }
        }
        return lookup
    }

    private func complete(_ did: String, _ result: Result<[UInt8], Reason>, _ readiness: Readiness) {
        let now = clock()
        let outcome: Result<DIDDocument, Reason>
        switch result {
        case .success(let body):
            switch DIDWeb.document(body, did: did) {
            case .success(let d): outcome = .success(d)
            case .failure(let e): outcome = .failure(Reason(e.description))
            }
        case .failure(let r): outcome = .failure(r)
        }
        state.withLock { st in
            st.inFlight -= 1
            var e = st.entries[did] ?? Entry()
            e.inFlight = nil
            switch outcome {
            case .success(let d):
                e.document = d; e.fetchedAt = now; e.failedUntil = 0
            case .failure(let r):
                e.failedUntil = now + settings.negativeTTL; e.failure = r.text; e.failureTemporary = r.temporary
            }
            st.entries[did] = e
        }
        readiness.fire()
    }
}
