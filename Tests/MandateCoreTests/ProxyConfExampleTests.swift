import Foundation
import MandateCore
import Testing

/// proxy.conf.example is documentation that must keep parsing.
@Test func proxyConfExampleParsesAndCoversEveryDirective() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let path = root.appendingPathComponent("proxy.conf.example").path
    let text = try String(contentsOfFile: path, encoding: .utf8)
    let config = try ConfigParser.parse(text, file: "proxy.conf.example")
    #expect(config.principals.count == 2)
    #expect(config.routes.count == 4)
    #expect(config.publicOrigin == "https://api.example.com")
    #expect(config.clientMaxBodySize == 10 << 20)
    // Every directive the parser knows appears in the example.
    let parser = try String(contentsOf: root.appendingPathComponent("Sources/MandateCore/Config/ConfigParser.swift"),
                            encoding: .utf8)
    let known = parser.split(separator: "\n").compactMap { line -> String? in
        let t = line.trimmingCharacters(in: .whitespaces)
        guard t.hasPrefix("case \""), let end = t.dropFirst(6).firstIndex(of: "\"") else { return nil }
        return String(t.dropFirst(6)[..<end])
    }
    // Inside blocks shown commented out (the TLS listener needs certificate files; did:web
    // makes the proxy fetch from the network).
    let nested = ["certificate", "key", "client_ca", "verify_client", "ca", "allow_private_addresses", "timeout",
                  "max_size", "ttl", "max_stale", "negative_ttl", "kid_cooldown", "fetch_rate", "max_scope", "jwks_uri", "refresh", "max_act_depth", "introspection_endpoint", "client_id", "client_secret", "introspection_cache", "keys", "trust_domain", "workload", "file", "checkpoint_every", "public_url", "expires_in", "interval", "secret_file", "delivery", "notification_endpoint", "backchannel_endpoint", "token_endpoint", "client_secret_file"]
    for d in known where !["name", "methods", "scope", "effect", "principals", "agents", "organizations", "allow_bearer", "auto", "off",
                           "optional", "required"].contains(d) {
        if nested.contains(d) {
            #expect(text.contains("#     \(d) "), "proxy.conf.example lacks \(d) in its block")
        } else {
            #expect(text.contains("\n\(d) ") || text.contains("\n# \(d) "), "proxy.conf.example lacks \(d)")
        }
    }
}
