import MandateCore
import MandateServer

enum Serve {
    static func run(_ args: [String]) throws {
        let o = try Options(args, valued: ["--config"], flags: ["--check"])
        let path = try o.required("--config")
        let config = try load(path)
        let verifier: Verifier
        let resolvers = try services(for: config)
        do { verifier = try Verifier(config: config, resolvers: resolvers) } catch { throw CLIError(message: "\(path): \(error.text)") }
        var err = StandardError()
        if config.principals.isEmpty { print("\(path): warning: no principal is enrolled, so every request is refused", to: &err) }
        if config.routes.isEmpty { print("\(path): warning: no route, so every request is refused", to: &err) }
        if o.flags.contains("--check") {
            do { try ProxyServer.checkTLS(config) } catch { throw CLIError(message: "\(error)") }
            print("\(path): ok (\(counted(config.principals.count, "principal")), \(counted(config.routes.count, "route")))")
            return
        }
        try serve(config: config, gate: verifier, configPath: path)
    }

    static func load(_ path: String) throws -> ProxyConfig {
        do {
            return try ConfigParser.parse(try Files.readText(path), file: path)
        } catch let e as ConfigError {
            throw CLIError(message: e.description)
        }
    }
}
