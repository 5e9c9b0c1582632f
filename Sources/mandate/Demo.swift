import Dispatch
import FoundationEssentials
import MandateCore
import MandateServer

/// The README's run command: demo identities on first run, the demo upstream, and the proxy.
enum Demo {
    static func run(_ args: [String]) throws {
        let o = try Options(args, valued: ["--dir", "--port", "--upstream-port", "--approval-port"])
        let dir = o.one("--dir") ?? "demo"
        let port = try portOption(o, "--port", default: 8080)
        let upstreamPort = try portOption(o, "--upstream-port", default: 9000)
        let approvalPort = try portOption(o, "--approval-port", default: 8082)
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let alice = try keyFile("\(dir)/alice.jwk", .edDSA)
        let agent = try keyFile("\(dir)/agent.jwk", .es256)
        _ = try keyFile("\(dir)/approval.jwk", .edDSA)
        // Re-minted on every start: delegations are short-lived by design.
        let token = Mint.delegation(key: alice, to: agent.did, jkt: agent.thumbprint, scope: "invoices:read",
                                    issuedAt: unixNow(), ttl: 12 * 3600, parent: nil, audience: nil, maxDepth: 1,
                                    jti: Mint.newID())
        try Files.write("\(dir)/chain.txt", "# root first, one token a line; the last is the leaf\n\(token)\n")
        let payer = Mint.delegation(key: alice, to: agent.did, jkt: agent.thumbprint, scope: "invoices:read payments:write",
                                    issuedAt: unixNow(), ttl: 12 * 3600, parent: nil, audience: nil, maxDepth: 1,
                                    jti: Mint.newID())
        try Files.write("\(dir)/pay-chain.txt", "# invoices:read payments:write: payments wait for Alice's approval\n\(payer)\n")
        let configText = demoConfig(alice: alice.did, port: port, upstreamPort: upstreamPort, approvalPort: approvalPort)
        try Files.write("\(dir)/proxy.conf", configText)
        let config = try Serve.load("\(dir)/proxy.conf")
        if portInUse(host: "127.0.0.1", port: approvalPort) {
            throw CLIError(message: "approval service 127.0.0.1:\(approvalPort): address already in use (try --approval-port)")
        }
        let verifier: Verifier
        do { verifier = try Verifier(config: config, resolvers: try services(for: config)) } catch let e as Reason { throw CLIError(message: e.text) }

        let me = CommandLine.arguments[0]
        let base = "http://127.0.0.1:\(port)"
        writeAll(1, Array("""
        Mandate demo
          principal  Alice   \(alice.did)
          agent              \(agent.did)
          delegation         invoices:read, 12 h  (\(dir)/chain.txt)
          delegation         invoices:read payments:write, 12 h  (\(dir)/pay-chain.txt)
          upstream           http://127.0.0.1:\(upstreamPort)  (built-in echo service)
          proxy              \(base)  (config: \(dir)/proxy.conf)
          approvals          http://127.0.0.1:\(approvalPort)  (CIBA; Alice answers with her key)

        In another terminal:
          # forwarded: the upstream echoes the identity headers Mandate added
          \(me) request --key \(dir)/agent.jwk --chain \(dir)/chain.txt \(base)/invoices/42
          # refused with 403 insufficient_scope: the delegation does not grant payments:write
          \(me) request -i -X POST -d '{"amount":100}' --key \(dir)/agent.jwk --chain \(dir)/chain.txt \(base)/payments
          # refused with 401: a plain request has no credential
          curl -i \(base)/invoices/42
          # held until Alice approves (30 s, then 403 approval_pending with an Approval-Id):
          \(me) request -X POST -d '{"amount":100,"to":"ACME"}' --key \(dir)/agent.jwk --chain \(dir)/pay-chain.txt \(base)/payments
          # meanwhile, as Alice, in a third terminal: see what waits, and approve it
          \(me) approvals list --key \(dir)/alice.jwk --url http://127.0.0.1:\(approvalPort)
          \(me) approve ID --key \(dir)/alice.jwk --url http://127.0.0.1:\(approvalPort)

        """.utf8))
        let upstream = try demoUpstream(host: "127.0.0.1", port: upstreamPort)  // bound now: fail before serving
        DispatchQueue.global().async { upstream.run() }
        try serve(config: config, gate: verifier, configPath: "\(dir)/proxy.conf")
    }

    static func keyFile(_ path: String, _ alg: JWSAlgorithm) throws -> SigningKey {
        if FileManager.default.fileExists(atPath: path) { return try Files.loadKey(path) }
        let key = SigningKey.generate(alg)
        try Files.writePrivate(path, key.privateJWK.serialized() + [0x0a])
        return key
    }

    static func demoConfig(alice: String, port: Int, upstreamPort: Int, approvalPort: Int) -> String {
        """
        # Written by `mandate demo`; see proxy.conf.example for every directive.
        listen 127.0.0.1:\(port);
        public_origin http://127.0.0.1:\(port);
        upstream http://127.0.0.1:\(upstreamPort);
        access_log stdout;

        principal \(alice) { name "Alice (demo)"; }

        # The built-in approval service: /payments waits for Alice (mandate approve ID --key alice.jwk).
        approval { listen 127.0.0.1:\(approvalPort); key approval.jwk; expires_in 300s; interval 2s; }
        approval_wait 30s;

        route /invoices/ { methods GET; scope invoices:read; effect allow; }
        route /payments { methods POST; scope payments:write; effect approve; }
        route /events { methods GET; scope invoices:read; effect allow; }   # Server-Sent Events, streamed

        """
    }
}

func portOption(_ o: Options, _ name: String, default value: Int) throws -> Int {
    guard let text = o.one(name) else { return value }
    guard let p = Int(text), (1...65535).contains(p) else { throw CLIError(message: "\(name) takes a port number", status: 2) }
    return p
}

enum UpstreamCommand {
    static func run(_ args: [String]) throws {
        let o = try Options(args, valued: ["--listen"])
        let listen = o.one("--listen") ?? "127.0.0.1:9000"
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]) else {
            throw CLIError(message: "--listen takes HOST:PORT", status: 2)
        }
        let upstream = try demoUpstream(host: String(listen[..<colon]), port: port)
        var err = StandardError()
        print("mandate: demo upstream listening on http://\(listen)", to: &err)
        upstream.run()
    }
}
