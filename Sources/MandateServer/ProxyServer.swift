import Glibc
import CCurl
import CMandateShim
import MandateCore

/// The proxy: one event loop per worker, each with its own SO_REUSEPORT listen sockets, its own
/// connections and its own curl multi handle; nothing shared on the hot path.
///
/// Sockets are bound in `init`, so `boundPorts` is known (port 0 picks a free port) before `run()`.
public final class ProxyServer: @unchecked Sendable {  // immutable after init; stop() only writes eventfds
    private let loops: [EventLoop]
    /// By `config.listen` entry: its TLS listener (shared by the loops), nil for plain HTTP.
    private let tlsListeners: [TLSListener?]
    /// The port each `config.listen` entry is bound to, in order.
    public let boundPorts: [Int]
    private let configListen: [ProxyConfig.Listen]

    /// `audit`: where every decision is recorded (the CLI makes it from `config.audit`).
    /// `activity`: counts each registered agent's decisions (the agent registry).
    public convenience init(config: ProxyConfig, gate: any RequestGate, audit: AuditTrail? = nil, activity: LiveRegistry? = nil) throws {
        try self.init(config: config, gate: gate, audit: audit, activity: activity, tune: { _ in })
    }

    /// `tune` adjusts the loops' derived settings (tests: small backpressure marks).
    init(config: ProxyConfig, gate: any RequestGate, audit: AuditTrail? = nil, activity: LiveRegistry? = nil,
         tune: (inout LoopSettings) -> Void) throws {
        signal(SIGPIPE, SIG_IGN)
        curl_global_init(3)  // CURL_GLOBAL_ALL
        let fileLimit = Self.raiseFileLimit()
        let workers = config.workers > 0 ? config.workers : max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        guard !config.listen.isEmpty else { throw ServerError("listen: no address configured") }
        let tls = try config.listen.map { try $0.tls.map(TLSListener.init) }

        var ports = config.listen.map(\.port)
        var fds = [[Int32]](repeating: [], count: workers)
        for (i, l) in config.listen.enumerated() {
            if l.port != 0 && mandate_port_in_use(l.host, Int32(l.port)) == 1 {
                fds.joined().forEach { close($0) }
                throw ServerError("listen \(l.host):\(l.port): address already in use")
            }
            for w in 0 ..< workers {
                let fd = mandate_listen_socket(l.host, Int32(ports[i]), 1, 4096)
                guard fd >= 0 else {
                    let err = errno
                    fds.joined().forEach { close($0) }
                    throw ServerError("listen \(l.host):\(l.port): cannot bind (errno \(err))")
                }
                if ports[i] == 0 { ports[i] = Int(mandate_local_port(fd)) }
                fds[w].append(fd)
            }
        }
        boundPorts = ports
        configListen = config.listen
        // Upstream connections are capped per loop (transfers beyond wait in curl's queue), so
        // the rest of the descriptors can go to clients: idle keep-alive clients need none upstream.
        let budget = (fileLimit - 64) / workers
        let upstreamCap = min(1024, budget / 2)
        var settings = try LoopSettings(config: config, maxConnections: max(64, budget - upstreamCap))
        settings.maxUpstreamConnections = upstreamCap
        tune(&settings)
        let sink = try AccessLogSink(destination: config.accessLog)
        tlsListeners = tls
        loops = try fds.map { try EventLoop(settings: settings, gate: gate, listenFDs: $0, listenTLS: tls, logSink: sink, audit: audit,
                                          activity: activity) }
    }

    /// Runs every loop; returns after `stop()`.
    public func run() throws {
        let threads = loops.dropFirst().map { loop in startThread { loop.run() } }
        loops[0].run()
        for t in threads { pthread_join(t, nil) }
    }

    /// Loads every file the configuration names once, as serving would: TLS certificates and
    /// keys, and the CA bundles for did:web and OAuth fetches (a bad one would otherwise show
    /// only as an agent's refused request). `serve --check`, and `serve` before it listens.
    public static func checkFiles(_ config: ProxyConfig) throws {
        for l in config.listen { if let t = l.tls { mandate_tls_ctx_free(try TLSListener.load(t)) } }
        var bundles: [(String, String)] = []
        if let ca = config.didWeb?.caFile { bundles.append(("did_web ca", ca)) }
        for i in config.oauthIssuers { if let ca = i.fetch.caFile { bundles.append(("oauth_issuer \(i.issuer) ca", ca)) } }
        for (what, path) in bundles {
            if let why = unreadable(path) { throw ServerError("\(what) \(path): \(why)") }
            do { _ = try CertificateFile.load(path) } catch { throw ServerError("\(what) \(path): not a PEM CA bundle") }
        }
    }

    /// Loads each TLS listener's certificate, key and CA bundle again (SIGHUP), from `config`'s
    /// listen entries at the same addresses. New connections get them; open ones keep theirs.
    /// Returns one message per listener that failed (it keeps its running files).
    public func reloadTLS(_ config: ProxyConfig) -> [String] {
        var failures: [String] = []
        for (i, t) in tlsListeners.enumerated() {
            guard let t else { continue }
            let old = t.settings
            guard let next = config.listen.first(where: { $0.tls != nil && $0.host == configListen[i].host
                                                           && $0.port == configListen[i].port })?.tls else { continue }
            do { try t.reload(next) } catch {
                failures.append("\(error) (keeping \(old.certificate))")
            }
        }
        return failures
    }

    /// /metrics, with the verifier's cache counts.
    public func metricsText(chainCache: (hits: Int, misses: Int), pendingApprovals: Int? = nil,
                            resolvers: Verifier.Resolvers = Verifier.Resolvers()) -> String {
        var caches: [(String, String, Int, Int)] = []
        if let w = resolvers.didWeb {
            caches.append(("mandate_did_web_cache_lookups_total", "did:web documents: served from the cache, or fetched.",
                           w.hits.load(ordering: .relaxed), w.fetches.load(ordering: .relaxed)))
        }
        if let i = resolvers.introspector {
            caches.append(("mandate_introspection_cache_lookups_total", "Opaque tokens: answered from the cache, or introspected.",
                           i.hits.load(ordering: .relaxed), i.asked.load(ordering: .relaxed)))
        }
        return MetricsText.render(loops: loops.map(\.metrics), chainCache: chainCache,
                                  connections: loops.reduce(0) { $0 + $1.liveConnections }, pendingApprovals: pendingApprovals,
                                  caches: caches)
    }

    /// Times the loops returned from epoll_wait, in all.
    var loopWakeups: Int { loops.reduce(0) { $0 + $1.wakeups.load(ordering: .relaxed) } }

    /// Thread-safe.
    public func stop() {
        for loop in loops { loop.wake() }
    }

    private static func raiseFileLimit() -> Int {
        var lim = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim) == 0 else { return 1024 }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
            _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
        }
        return Int(min(lim.rlim_cur, 1 << 20))
    }
}
