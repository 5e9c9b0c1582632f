import Dispatch
import Synchronization
import MandateCore
import MandateRegistry
import MandateServer
#if canImport(Glibc)
import Glibc
#endif

/// Runs the proxy until SIGINT or SIGTERM. SIGHUP re-reads `configPath` and swaps principals,
/// routes and verification settings atomically; listen, upstream and HTTP limits need a restart.
/// `registry`: the agent registry in state_dir, polled and flushed while the proxy runs.
func serve(config: ProxyConfig, gate: Verifier, configPath: String?, registry: RegistrySync? = nil) throws {
    let reloadable = ReloadableGate(gate)
    var audit: AuditTrail?
    if let a = config.audit {
        let key = try Files.loadKey(a.key)
        do {
            audit = try AuditTrail(path: a.file, checkpointEvery: a.checkpointEvery, maxSize: a.maxSize) { hash in
                Base64URL.encode(key.sign(Array(hash.utf8)))
            }
        } catch { throw CLIError(message: "\(error)") }
    }
    let server: ProxyServer
    do { server = try ProxyServer(config: config, gate: reloadable, audit: audit, activity: registry?.live) } catch { throw CLIError(message: "\(error)") }
    let listening = zip(config.listen, server.boundPorts)
        .map { "\($0.host):\($1)\($0.tls == nil ? "" : " (TLS\($0.tls!.verifyClient == .off ? "" : ", client certificates \($0.tls!.verifyClient.rawValue)"))")" }
        .joined(separator: ", ")
    var err = StandardError()
    print("mandate: listening on \(listening), forwarding to \(config.upstream), public origin \(config.publicOrigin)",
          to: &err)
    var sources: [DispatchSourceSignal] = []
    for sig in [SIGINT, SIGTERM] {
        signal(sig, SIG_IGN)
        let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        s.setEventHandler { server.stop() }
        s.resume()
        sources.append(s)
    }
    if let configPath {
        signal(SIGHUP, SIG_IGN)
        let s = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        s.setEventHandler {
            var err = StandardError()
            do {
                let next = try Serve.load(configPath)
                let running = reloadable.verifier
                let resolvers = try services(for: next, running: (running.config, running.resolvers))
                let verifier = try running.successor(config: next, now: unixNow(), resolvers: resolvers)
                reloadable.replace(with: verifier)
                for failure in server.reloadTLS(next) { print("mandate: reload: \(failure)", to: &err) }
                print("mandate: reloaded \(configPath) (\(counted(next.principals.count, "principal")), \(counted(next.routes.count, "route")))",
                      to: &err)
                let pending = restartOnlyChanges(config, next)
                if !pending.isEmpty {
                    print("mandate: warning: \(pending.joined(separator: ", ")) changed; that takes a restart", to: &err)
                }
            } catch let e as CLIError {
                print("mandate: reload failed, keeping the running configuration: \(e.message)", to: &err)
            } catch let e as Reason {
                print("mandate: reload failed, keeping the running configuration: \(e.text)", to: &err)
            } catch {
                print("mandate: reload failed, keeping the running configuration: \(error)", to: &err)
            }
        }
        s.resume()
        sources.append(s)
    }
    var admin: AdminServer?
    if let a = config.adminListen {
        do {
            var token: String?
            if let f = config.adminTokenFile {
                // One line; at least 32 characters, so that it cannot be guessed.
                let t = try Files.readText(f).trimmingCharacters(in: "\n\r \t")  // not "\r\n": one Character
                guard t.utf8.count >= 32 else { throw CLIError(message: "admin_token_file \(f): the token must be at least 32 characters") }
                // As ssh does for keys: a secret others can read is worth saying so.
                var st = stat()
                if stat(f, &st) == 0, st.st_mode & 0o077 != 0 {
                    print("mandate: warning: admin_token_file \(f) can be read by others (mode \(String(st.st_mode & 0o777, radix: 8))); chmod 600 it",
                          to: &err)
                }
                token = t
            }
            var handler: AdminServer.API?
            if let registry {
                let api = RegistryAPI(sync: registry, configuredPrincipals: { reloadable.verifier.config.principals })
                handler = { m, p, b, id in
                    let a = api.answer(method: m, path: p, body: b, requestID: id)
                    return (a.status, a.body, a.allow)
                }
            }
            admin = try AdminServer(host: a.host, port: a.port, token: token,
                                    jwks: { reloadable.verifier.resolvers.txnTokens?.jwks },
                                    metrics: { server.metricsText(chainCache: reloadable.verifier.chainCacheCounts,
                                                                 pendingApprovals: reloadable.verifier.resolvers.approvals?.pending(now: unixNow()),
                                                                 resolvers: reloadable.verifier.resolvers) },
                                    api: handler)
        } catch let e as CLIError { throw e } catch { throw CLIError(message: "\(error)") }
        print("mandate: admin listener on \(a.host):\(admin!.port)", to: &err)
        admin!.start()
    }
    // The built-in approval service (CIBA), and its listener. `approvals` is the ApprovalGate the
    // pipeline holds `effect approve` requests on.
    var approvalListener: ApprovalServer?
    let approvals = reloadable.verifier.resolvers.approvals as? ApprovalService
    if let approvals, let l = config.approval?.listen {
        do { approvalListener = try ApprovalServer(host: l.host, port: l.port, service: approvals) } catch { throw CLIError(message: "\(error)") }
        print("mandate: approval service on \(l.host):\(approvalListener!.port) (\(approvals.settings.issuer))", to: &err)
        approvalListener!.start()
    }
    registry?.start { message in
        var err = StandardError()
        print("mandate: \(message)", to: &err)
    }
    try withExtendedLifetime((sources, admin, approvals, approvalListener)) { try server.run() }
    admin?.stop()
    approvalListener?.stop()
    registry?.stop()  // the last activity counts
    audit?.close(unixMillis: Int64(unixNow()) * 1000)  // a last signed checkpoint
}

/// The built-in approval service `config` asks for (`approval { listen …; key …; }`), with its
/// CIBA clients' secrets read from their files; nil without one. `principals`: the running
/// configuration's, read per request.
func approvalService(for config: ProxyConfig) throws -> ApprovalService? {
    guard let a = config.approval, a.listen != nil, let keyFile = a.key else { return nil }
    let key: SigningKey
    do { key = try Files.loadKey(keyFile) } catch let e as CLIError { throw CLIError(message: "approval key: \(e.message)") }
    let clients = try config.cibaClients.map { c -> CIBAClientCredentials in
        // One line; at least 32 characters, so that it cannot be guessed.
        let secret = try Files.readText(c.secretFile).trimmingCharacters(in: "\n\r \t")
        guard secret.utf8.count >= 32 else {
            throw CLIError(message: "\(c.secretFile): ciba_client \(c.id)'s secret must be at least 32 characters")
        }
        return CIBAClientCredentials(id: c.id, secret: Array(secret.utf8), delivery: c.delivery, notificationEndpoint: c.notificationEndpoint)
    }
    let log: @Sendable (String) -> Void = { line in
        var err = StandardError()
        print("mandate: \(line)", to: &err)
    }
    return ApprovalService(settings: ApprovalService.Settings(a), key: key, clients: clients,
                           principals: LivePrincipals(config.principals), notify: ApprovalServer.pinger(log: log),
                           webhook: ApprovalServer.webhooks(log: log), clock: { unixNow() })
}

/// The configured principals and the registry's, replaced on reload: the approval service and
/// its pending approvals outlive a configuration.
final class LivePrincipals: ApprovalPrincipals {
    private let current: Mutex<(principals: [ProxyConfig.Principal], registry: (any RevocationState)?)>
    init(_ principals: [ProxyConfig.Principal]) { current = Mutex((principals, nil)) }
    func replace(_ principals: [ProxyConfig.Principal], registry: (any RevocationState)?) {
        current.withLock { $0 = (principals, registry) }
    }
    /// A registry principal is asked by its DID or name, told at its webhook; its key is its DID's (did:key, did:jwk).
    private var configured: ConfiguredPrincipals {
        let (principals, registry) = current.withLock { $0 }
        let view = registry?.current()
        let registered = (view?.anchors ?? []).filter { a in !principals.contains { $0.did == a } }
            .map { view?.principals[$0] ?? ProxyConfig.Principal(did: $0, name: $0) }
        return ConfiguredPrincipals { principals + registered }
    }
    func principal(hint: String) -> String? { configured.principal(hint: hint) }
    func key(for did: String) -> (key: VerificationKey, methodID: String)? { configured.key(for: did) }
    func webhook(for did: String) -> String? { configured.webhook(for: did) }
    func name(for did: String) -> String? { configured.name(for: did) }
}

/// What the verifier fetches and signs with: the network resolvers (kept across a reload where
/// their settings did not change) and the Txn-Token keys, read from their files again.
func services(for config: ProxyConfig, running: (ProxyConfig, Verifier.Resolvers)? = nil) throws -> Verifier.Resolvers {
    var r = CurlFetcher.resolvers(for: config, running: running)
    if let t = config.txnToken {
        let keys = try t.keyFiles.map { f in
            do { return try Files.loadKey(f) } catch let e as CLIError { throw CLIError(message: "txn_token keys: \(e.message)") }
        }
        r.txnTokens = TxnTokenIssuer(keys: keys, settings: t)
    }
    if config.approval?.listen != nil {
        // The built-in service listens from the start; a reload gives it the new principals.
        if let kept = running?.1.approvals as? ApprovalService {
            r.approvals = kept
        } else {
            r.approvals = try approvalService(for: config)
        }
    } else if let p = config.cibaProvider {
        if let running, running.0.cibaProvider == p, running.0.approval?.expiresIn == config.approval?.expiresIn,
           let kept = running.1.approvals {
            r.approvals = kept  // pending approvals survive a reload
        } else {
            let secret: String
            do { secret = try Files.readText(p.clientSecretFile).trimmingCharacters(in: "\n\r \t") } catch let e as CLIError {
                throw CLIError(message: "ciba_provider client_secret_file: \(e.message)")
            }
            r.approvals = ProviderApprovals(settings: p, secret: secret, expiresIn: config.approval?.expiresIn ?? 300,
                                            poster: CurlFetcher(settings: p.fetch),
                                            schedule: { seconds, f in DispatchQueue.global().asyncAfter(deadline: .now() + seconds, execute: f) },
                                            clock: { unixNow() })
        }
    }
    r.registry = running?.1.registry  // the registry is opened once, by serve
    (r.approvals as? ApprovalService).map { ($0.principals as? LivePrincipals)?.replace(config.principals, registry: r.registry) }
    return r
}

func demoUpstream(host: String, port: Int) throws -> DemoUpstream {
    if portInUse(host: host, port: port) {
        throw CLIError(message: "demo upstream \(host):\(port): address already in use (try --upstream-port)")
    }
    do { return try DemoUpstream(host: host, port: port) } catch { throw CLIError(message: "demo upstream: \(error)") }
}

/// Settings the running event loops were built with; a reload cannot change them.
func restartOnlyChanges(_ a: ProxyConfig, _ b: ProxyConfig) -> [String] {
    var changed: [String] = []
    // Certificates and keys reload; which addresses listen, and whether with TLS, does not.
    if a.listen.map({ "\($0.host):\($0.port) \($0.tls == nil)" }) != b.listen.map({ "\($0.host):\($0.port) \($0.tls == nil)" }) {
        changed.append("listen")
    }
    if a.workers != b.workers { changed.append("workers") }
    if a.upstream != b.upstream { changed.append("upstream") }
    if a.accessLog != b.accessLog { changed.append("access_log") }
    if a.adminListen != b.adminListen { changed.append("admin_listen") }
    if a.audit != b.audit { changed.append("audit") }
    if a.approval != b.approval || a.cibaClients != b.cibaClients || (a.cibaProvider == nil) != (b.cibaProvider == nil) {
        changed.append("approval")
    }
    if a.stateDir != b.stateDir { changed.append("state_dir") }
    if a.clientMaxBodySize != b.clientMaxBodySize || a.maxHeaderBytes != b.maxHeaderBytes
        || a.maxHeaderCount != b.maxHeaderCount || a.maxURILength != b.maxURILength { changed.append("HTTP limits") }
    if a.headerTimeout != b.headerTimeout || a.idleTimeout != b.idleTimeout || a.upstreamConnectTimeout != b.upstreamConnectTimeout
        || a.upstreamTimeout != b.upstreamTimeout { changed.append("timeouts") }
    return changed
}
