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
    let tlsBlock = ["certificate", "key", "client_ca", "verify_client", "off", "optional", "required"]
    for d in known where !["name", "methods", "scope", "effect", "principals", "agents", "auto"].contains(d) {
        if tlsBlock.contains(d) { continue }
        #expect(text.contains("\n\(d) "), "proxy.conf.example lacks \(d)")
    }
    // The TLS listener is shown commented out (it needs certificate files).
    for d in tlsBlock.prefix(4) { #expect(text.contains("#     \(d) "), "proxy.conf.example lacks tls \(d)") }
}
