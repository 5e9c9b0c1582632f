import MandateCore

enum Serve {
    static func run(_ args: [String]) throws {
        let o = try Options(args, valued: ["--config"], flags: ["--check"])
        let path = try o.required("--config")
        let config = try load(path)
        let verifier: Verifier
        do { verifier = try Verifier(config: config) } catch { throw CLIError(message: "\(path): \(error.text)") }
        if o.flags.contains("--check") {
            print("\(path): ok (\(config.principals.count) principals, \(config.routes.count) routes)")
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
