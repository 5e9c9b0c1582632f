import Testing
@testable import MandateCore

/// approval_wait, state_dir and ciba_provider: what they set, and every mistake named at file:line.
@Suite struct ApprovalConfigTests {
    func parse(_ text: String) throws(ConfigError) -> ProxyConfig {
        try ConfigParser.parse(text + "\nupstream http://127.0.0.1:9000;\npublic_origin http://127.0.0.1:8080;\n", file: "p.conf")
    }

    func error(_ text: String) -> String? {
        do { _ = try parse(text); return nil } catch { return error.description }
    }

    @Test func approvalWaitDefaultsTo30sAndARouteMaySetItsOwn() throws {
        #expect(try parse("").approvalWait == 30)
        let c = try parse("approval_wait 5s;\nroute /pay { effect approve; approval_wait 2m; }")
        #expect(c.approvalWait == 5 && c.routes[0].approvalWait == 120)
        #expect(error("approval_wait 11m;") == "p.conf:1: '11m' is not a duration (like 500ms, 30s, 5m, 24h) up to 600s")
    }

    @Test func stateDirIsResolvedAgainstTheConfigFolder() throws {
        let c = try ConfigParser.parse("state_dir state;\nupstream http://127.0.0.1:9000;\npublic_origin http://127.0.0.1:8080;\n",
                                       file: "/etc/mandate/proxy.conf")
        #expect(c.stateDir == "/etc/mandate/state")
    }

    @Test func cibaProviderNeedsItsEndpointsAndCredentials() throws {
        let c = try parse("""
        ciba_provider https://login.example {
            backchannel_endpoint https://login.example/bc; token_endpoint https://login.example/token;
            client_id gw; client_secret_file s; timeout 2s;
        }
        """)
        #expect(c.cibaProvider?.issuer == "https://login.example" && c.cibaProvider?.clientID == "gw")
        #expect(c.cibaProvider?.fetch.timeout == 2)
        #expect(error("ciba_provider https://l.example { client_id gw; }")
                == "p.conf:1: ciba_provider needs backchannel_endpoint, token_endpoint, client_id and client_secret_file")
        #expect(error("ciba_provider https://l.example {\n backchannel_endpoint ftp://x; }") == "p.conf:2: 'ftp://x' is not an http:// or https:// URL")
        #expect(error("ciba_provider https://l.example {\n nonsense 1; }")?.hasPrefix("p.conf:2: unknown directive 'nonsense' in ciba_provider") == true)
    }

    @Test func anApprovalBlockWithoutListenNeedsAProvider() {
        #expect(error("approval { expires_in 60s; }") == "p.conf:1: approval needs listen (the built-in service) unless a ciba_provider asks instead")
        #expect(error("approval {\n listen 127.0.0.1:8444; }") == "p.conf:1: approval needs key: it signs receipts for decisions made on its page")
        #expect(error("listen 127.0.0.1:8444;\napproval { listen 127.0.0.1:8444; key k.jwk; }")
                == "p.conf:2: approval listen 127.0.0.1:8444 is already in use by listen or admin_listen")
    }

    /// Links are public_url + "/…": a trailing slash would make them "//…".
    @Test func publicURLLosesATrailingSlash() throws {
        let c = try parse("approval { listen 127.0.0.1:8444; key k.jwk; public_url https://approve.example/app/; }")
        #expect(c.approval?.publicURL == "https://approve.example/app")
    }

    @Test func principalWebhookMustBeAURL() {
        let did = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
        #expect(error("principal \(did) { name A;\n webhook nope; }") == "p.conf:2: 'nope' is not an http:// or https:// URL")
    }
}
