import MandateCore
import MandateRegistry
import MandateServer

enum Serve {
    static func run(_ args: [String]) throws {
        let o = try Options(args, valued: ["--config"], flags: ["--check"])
        let path = try o.required("--config")
        let config = try load(path)
        let verifier: Verifier
        var resolvers: Verifier.Resolvers
        do { resolvers = try services(for: config) } catch let e as CLIError { throw CLIError(message: "\(path): \(e.message)") }
        // The agent registry in state_dir: its view is what the verifier reads, never the database.
        var registry: RegistrySync?
        if let store = try RegistryPlace.open(config, path) {
            do { registry = try RegistrySync(store: store) } catch { throw CLIError(message: "\(path): \(error.message)") }
            resolvers.registry = registry?.live
            (resolvers.approvals as? ApprovalService).map { ($0.principals as? LivePrincipals)?.replace(config.principals, registry: registry?.live) }
        }
        do { verifier = try Verifier(config: config, resolvers: resolvers) } catch { throw CLIError(message: "\(path): \(error.text)") }
        var err = StandardError()
        if config.principals.isEmpty && config.organizations.isEmpty && config.oauthIssuers.isEmpty && config.stateDir == nil {
            print("\(path): warning: no principal, organization or oauth_issuer, so every request is refused", to: &err)
        }
        if config.txnToken != nil && config.adminListen == nil {
            print("\(path): warning: txn_token without admin_listen: upstreams cannot fetch the keys", to: &err)
        }
        if let a = config.adminListen, a.host == "0.0.0.0" || a.host == "::" {
            print("\(path): warning: admin_listen \(a.host) is reachable from every network; bind it to a private address", to: &err)
        }
        if config.routes.contains(where: \.allowBearer) && config.oauthIssuers.isEmpty {
            print("\(path): warning: allow_bearer has no effect without an oauth_issuer", to: &err)
        }
        if config.routes.contains(where: { $0.effect == .approve }) && config.approval == nil && config.cibaProvider == nil {
            print("\(path): warning: effect approve without an approval block or ciba_provider: those routes answer 403 approval_required", to: &err)
        }
        if config.routes.isEmpty { print("\(path): warning: no route, so every request is refused", to: &err) }
        do { try ProxyServer.checkFiles(config) } catch { throw CLIError(message: "\(error)") }
        if o.flags.contains("--check") {
            var parts = [counted(config.principals.count, "principal")]
            if !config.organizations.isEmpty { parts.append(counted(config.organizations.count, "organization")) }
            if !config.oauthIssuers.isEmpty { parts.append(counted(config.oauthIssuers.count, "OAuth issuer")) }
            parts.append(counted(config.routes.count, "route"))
            print("\(path): ok (\(parts.joined(separator: ", ")))")
            return
        }
        try serve(config: config, gate: verifier, configPath: path, registry: registry)
    }

    static func load(_ path: String) throws -> ProxyConfig {
        do {
            return try ConfigParser.parse(try Files.readText(path), file: path)
        } catch let e as ConfigError {
            throw CLIError(message: e.description)
        }
    }
}
