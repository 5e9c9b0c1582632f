import MandateCore

/// Replaced once the server lands.
func serve(config: ProxyConfig, gate: Verifier) throws {
    throw CLIError(message: "server not built yet")
}

func runDemoUpstream(host: String, port: Int) throws {
    throw CLIError(message: "server not built yet")
}
