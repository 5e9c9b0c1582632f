import Testing
@testable import MandateCore
import MandateCrypto

/// nginx-style configuration; every error names `file:line`.
@Suite struct ConfigParserTests {
    let alice = SigningKey.generate(.edDSA).did
    let bob = SigningKey.generate(.es256).did

    /// Appends the two required directives when a test leaves them out (after the text, so lines hold).
    func parse(_ text: String) throws(ConfigError) -> ProxyConfig {
        var t = text
        let lastLine = text.split(separator: "\n").last.map { String($0.split(separator: "#", maxSplits: 1,
                                                                                 omittingEmptySubsequences: false)[0]) }
        let end = (lastLine ?? "").trimmingCharacters(in: .whitespacesAndNewlines).last
        guard end == nil || end == ";" || end == "}" else { return try ConfigParser.parse(t, file: "proxy.conf") }
        if !t.contains("upstream ") { t += "\nupstream http://127.0.0.1:9000;" }
        if !t.contains("public_origin ") { t += "\npublic_origin http://127.0.0.1:8080;" }
        return try ConfigParser.parse(t, file: "proxy.conf")
    }

    @Test func requiresUpstreamAndPublicOrigin() {
        #expect(throws: ConfigError(file: "proxy.conf", line: 1, message: "missing required directive 'upstream'")) {
            try ConfigParser.parse("public_origin https://a.example;", file: "proxy.conf")
        }
        // Named at the file's last line: a final newline does not start another.
        #expect(throws: ConfigError(file: "proxy.conf", line: 1, message: "missing required directive 'public_origin'")) {
            try ConfigParser.parse("upstream http://127.0.0.1:9000;\n", file: "proxy.conf")
        }
        #expect(throws: ConfigError(file: "proxy.conf", line: 2, message: "missing required directive 'public_origin'")) {
            try ConfigParser.parse("upstream http://127.0.0.1:9000;\n# end", file: "proxy.conf")
        }
    }

    func error(_ text: String) -> String? {
        do { _ = try parse(text); return nil } catch { return error.description }
    }

    @Test func parsesEveryDirective() throws {
        let c = try parse("""
        # Mandate
        listen 127.0.0.1:8443;
        listen [::1]:8444;
        listen 9000;
        workers 4;
        public_origin https://api.example;
        audience "https://api.example/agents";
        upstream http://127.0.0.1:9001;
        max_chain_length 3;
        clock_skew 10s;
        max_delegation_lifetime 12h;
        dpop_max_age 2m;
        dpop_future_skew 3;
        replay_cache_size 5000;
        chain_cache_size 100;
        client_max_body_size 1m;
        max_header_size 16k;
        max_headers 50;
        max_uri_length 4k;
        header_timeout 500ms;
        idle_timeout 1d;
        upstream_connect_timeout 2s;
        upstream_timeout 30s;
        trusted_proxies 10.0.0.0/8 ::1;
        trusted_proxies 192.168.0.1;
        access_log /var/log/mandate.log;
        principal \(alice) { name "Alice"; }
        principal \(bob) {
            name 'Bob B';
        }
        route /orders/ {
            methods GET HEAD;
            scope orders:read;
            effect allow;
            principals \(alice);
            agents did:key:zAgent;
        }
        route / { effect deny; }
        route /payments { scope pay admin; effect approve; }
        """)
        #expect(c.listen == [.init(host: "127.0.0.1", port: 8443), .init(host: "::1", port: 8444),
                             .init(host: "0.0.0.0", port: 9000)])
        #expect(c.workers == 4)
        #expect(c.publicOrigin == "https://api.example")
        #expect(c.audience == "https://api.example/agents")
        #expect(c.effectiveAudience == "https://api.example/agents")
        #expect(c.upstream == "http://127.0.0.1:9001")
        #expect(c.maxChainLength == 3)
        #expect(c.clockSkew == 10)
        #expect(c.maxDelegationLifetime == 12 * 3600)
        #expect(c.dpopMaxAge == 120)
        #expect(c.dpopFutureSkew == 3)
        #expect(c.replayCacheSize == 5000)
        #expect(c.chainCacheSize == 100)
        #expect(c.clientMaxBodySize == 1 << 20)
        #expect(c.maxHeaderBytes == 16 << 10)
        #expect(c.maxHeaderCount == 50)
        #expect(c.maxURILength == 4 << 10)
        #expect(c.headerTimeout == 0.5)
        #expect(c.idleTimeout == 86400)
        #expect(c.upstreamConnectTimeout == 2)
        #expect(c.upstreamTimeout == 30)
        #expect(c.trustedProxies == ["10.0.0.0/8", "::1", "192.168.0.1"])
        #expect(c.accessLog == "/var/log/mandate.log")
        #expect(c.principals == [.init(did: alice, name: "Alice"), .init(did: bob, name: "Bob B")])
        #expect(c.routes.count == 3)
        #expect(c.routes[0] == .init(prefix: "/orders/", methods: ["GET", "HEAD"], scopes: ["orders:read"], effect: .allow,
                                     principals: [alice], agents: ["did:key:zAgent"], origin: "proxy.conf:31"))
        #expect(c.routes[1].effect == .deny)
        #expect(c.routes[2].scopes == ["pay", "admin"])
        #expect(c.routes[2].effect == .approve)
    }

    @Test func defaultsApplyWhenAbsent() throws {
        let c = try parse("")
        #expect(c.maxChainLength == 5)
        #expect(c.clockSkew == 30)
        #expect(c.maxDelegationLifetime == 24 * 3600)
        #expect(c.dpopMaxAge == 60)
        #expect(c.dpopFutureSkew == 5)
        #expect(c.effectiveAudience == c.publicOrigin)
        #expect(c.workers == 0)
    }

    @Test func workersAutoIsZero() throws {
        #expect(try parse("workers auto;").workers == 0)
    }

    @Test func unknownDirectiveNamesFileAndLine() {
        #expect(error("listen 8080;\nworkers 2;\nupsteam http://x;\n") == "proxy.conf:3: unknown directive 'upsteam'")
    }

    @Test func unknownDirectiveInsideBlockNamesLine() {
        #expect(error("route / {\n  effect allow;\n  scopes read;\n}") == "proxy.conf:3: unknown directive 'scopes' in route")
        #expect(error("principal \(alice) {\n  nam \"A\";\n}") == "proxy.conf:2: unknown directive 'nam' in principal (name, webhook)")
    }

    @Test func missingSemicolonIsReported() {
        #expect(error("workers 2;\nlisten 8080") == "proxy.conf:2: directive 'listen' is not terminated by ';'")
        #expect(error("route / {\n  effect allow\n}") == "proxy.conf:3: unexpected '}' (missing ';'?)")
    }

    @Test func unclosedBlockNamesItsOpeningLine() {
        #expect(error("workers 2;\nroute / {\n  effect allow;\n") == "proxy.conf:2: block is not closed with '}'")
    }

    @Test func strayClosingBraceIsReported() {
        #expect(error("workers 2;\n}") == "proxy.conf:2: unexpected '}'")
    }

    @Test func unterminatedStringIsReported() {
        #expect(error("audience \"https://x;\n") == "proxy.conf:1: unterminated string")
    }

    @Test func duplicateSingleDirectiveNamesBothLines() {
        #expect(error("upstream http://a;\n\nupstream http://b;") == "proxy.conf:3: 'upstream' is duplicate (first at line 1)")
        #expect(error("route / {\n effect allow;\n effect deny;\n}") == "proxy.conf:3: 'effect' is duplicate in this route")
    }

    @Test func repeatableDirectivesMayRepeat() throws {
        #expect(try parse("listen 1;\nlisten 2;\ntrusted_proxies ::1;\ntrusted_proxies 10.0.0.1;").listen.count == 2)
    }

    @Test func badDurationIsReported() {
        #expect(error("clock_skew 30x;") == "proxy.conf:1: '30x' is not a duration (like 500ms, 30s, 5m, 24h) up to 3600s")
        #expect(error("\ndpop_max_age 2h;")?.hasPrefix("proxy.conf:2: '2h' is not a duration") == true)
        #expect(error("idle_timeout -1s;")?.hasPrefix("proxy.conf:1: '-1s' is not a duration") == true)
    }

    @Test func badSizeIsReported() {
        #expect(error("client_max_body_size 10q;") == "proxy.conf:1: '10q' is not a size (like 16k, 10m)")
        #expect(error("max_header_size 0;") == "proxy.conf:1: '0' is not a size (like 16k, 10m)")
    }

    @Test func numberOutOfRangeIsReported() {
        #expect(error("max_chain_length 17;") == "proxy.conf:1: '17' is not a whole number in 1...16")
        #expect(error("workers many;") == "proxy.conf:1: 'many' is not a whole number in 1...256")
    }

    @Test func directiveTakingOneValueRefusesTwo() {
        #expect(error("upstream http://a http://b;") == "proxy.conf:1: 'upstream' takes exactly one value (missing ';'?)")
    }

    @Test func routeWithoutEffectIsReported() {
        #expect(error("\nroute /api {\n  scope read;\n}") == "proxy.conf:2: route needs an effect (allow, deny or approve)")
        #expect(error("route / { effect maybe; }") == "proxy.conf:1: effect is allow, deny or approve")
    }

    @Test func routePrefixMustBeNormalised() {
        #expect(error("route /a/../b { effect allow; }") == "proxy.conf:1: route prefix '/a/../b' must be a normalised absolute path")
        #expect(error("route api { effect allow; }")?.contains("must be a normalised absolute path") == true)
    }

    @Test func routeMethodsMustBeUpperCase() {
        #expect(error("route / { methods get; effect allow; }") == "proxy.conf:1: 'get' is not an upper-case method name")
    }

    @Test func routeMayOnlyAdmitEnrolledPrincipals() {
        #expect(error("route / {\n effect allow;\n principals \(bob);\n}")
                == "proxy.conf:1: route admits principal \(bob), which is not enrolled nor spoken for by an organization")
    }

    @Test func principalWithInvalidDIDIsReported() {
        let e = error("workers 1;\nprincipal did:key:zNotAKey { name \"x\"; }")
        #expect(e?.hasPrefix("proxy.conf:2: principal 'did:key:zNotAKey' is not a usable DID") == true, "\(e ?? "")")
        #expect(error("principal did:web:example.com { name \"x\"; }")
                == "proxy.conf:1: principal did:web:example.com is a did:web: enable fetching it with did_web { … }")
        #expect(error("did_web { }\nprincipal did:web:10.0.0.1 { name \"x\"; }")?
            .hasPrefix("proxy.conf:2: principal 'did:web:10.0.0.1' is not a usable DID (did:web host must be a domain name") == true)
    }

    @Test func parsesDIDWebBlock() throws {
        let c = try parse("did_web {\n ca web-ca.pem;\n allow_private_addresses on;\n timeout 2s;\n max_size 16k;\n ttl 1m;\n"
                          + " max_stale 10m;\n negative_ttl 5s;\n kid_cooldown 10s;\n fetch_rate 3;\n}\nprincipal did:web:example.com { name W; }")
        let w = try #require(c.didWeb)
        #expect(w.caFile == "web-ca.pem" && w.allowPrivateAddresses && w.timeout == 2 && w.maxSize == 16 << 10)
        #expect(w.cache.ttl == 60 && w.cache.maxStale == 600 && w.cache.negativeTTL == 5 && w.cache.kidCooldown == 10)
        #expect(w.cache.fetchesPerSecond == 3 && w.cache.burst == 6)
        #expect(try parse("did_web { }").didWeb == ProxyConfig.DIDWebSettings())
        #expect(try parse("workers 1;").didWeb == nil)
        #expect(error("did_web {\n fetch_rate 0;\n}") == "proxy.conf:2: '0' is not a whole number in 1...10000")
        #expect(error("did_web {\n resolve x;\n}")?.hasPrefix("proxy.conf:2: unknown directive 'resolve' in did_web") == true)
        #expect(error("did_web on;") == "proxy.conf:1: did_web takes a block: did_web { … }")
    }

    @Test func principalEnrolledTwiceIsReported() {
        #expect(error("principal \(alice) { name a; }\nprincipal \(alice) { name b; }")
                == "proxy.conf:1: principal \(alice) is enrolled twice")
    }

    @Test func principalNeedsAName() {
        #expect(error("principal \(alice) { }") == "proxy.conf:1: principal needs a name")
    }

    @Test func publicOriginMustBeAnOriginWithoutPath() {
        #expect(error("public_origin ftp://x;") == "proxy.conf:1: public_origin must be http(s)://host[:port] without a path")
        #expect(error("public_origin https://api.example/v1;") == "proxy.conf:1: public_origin must be http(s)://host[:port] without a path")
        #expect(error("public_origin https://api.example/v1/;") == "proxy.conf:1: public_origin must be http(s)://host[:port] without a path")
        #expect(error("public_origin https://api.example/;") == nil)
        #expect(error("public_origin https://API.example:443;") == nil)
    }

    @Test func upstreamMustBeHTTPURL() {
        #expect(error("upstream 127.0.0.1:9000;") == "proxy.conf:1: upstream must be an http:// or https:// URL")
    }

    @Test func listenNeedsAddressAndPort() {
        #expect(error("listen localhost:80;") == "proxy.conf:1: listen takes an IP address and port, like 127.0.0.1:8080")
        #expect(error("listen 127.0.0.1:70000;")?.hasPrefix("proxy.conf:1: listen takes") == true)
    }

    @Test func badTrustedProxyNamesItsLine() {
        #expect(error("\ntrusted_proxies 10.0.0.0/8 10.0.0.0/40;") == "proxy.conf:2: '10.0.0.0/40' has a bad prefix length")
        #expect(error("trusted_proxies;") == "proxy.conf:1: trusted_proxies needs at least one address")
    }

    @Test func blockOnPlainDirectiveIsReported() {
        #expect(error("workers { }") == "proxy.conf:1: 'workers' does not take a block")
    }

    @Test func commentsAndQuotesAreHonoured() throws {
        let c = try parse("audience \"a;b # c\"; # trailing comment\naccess_log off;#x")
        #expect(c.audience == "a;b # c")
        #expect(c.accessLog == "off")
    }

    @Test func parsedConfigBuildsAVerifier() throws {
        let c = try parse("public_origin https://api.example;\nprincipal \(alice) { name a; }\nroute / { effect allow; }")
        #expect(throws: Never.self) { try Verifier(config: c) }
    }

    // MARK: TLS listeners

    @Test func parsesTLSListenerWithPathsRelativeToTheConfigFile() throws {
        let text = """
        listen 127.0.0.1:8443 tls {
            certificate certs/server.pem;
            key /etc/mandate/server.key;
            client_ca agents-ca.pem;
            verify_client required;
        }
        listen 127.0.0.1:8080;
        public_origin https://api.example.com;
        upstream http://127.0.0.1:9000;
        """
        let c = try ConfigParser.parse(text, file: "/srv/mandate/proxy.conf")
        #expect(c.listen.count == 2)
        #expect(c.listen[1].tls == nil)
        let tls = try #require(c.listen[0].tls)
        #expect(tls.certificate == "/srv/mandate/certs/server.pem")
        #expect(tls.key == "/etc/mandate/server.key")
        #expect(tls.clientCA == "/srv/mandate/agents-ca.pem")
        #expect(tls.verifyClient == .required)
        #expect(tls.origin == "/srv/mandate/proxy.conf:1")
    }

    @Test func clientCAAloneMeansOptionalClientCertificates() throws {
        let c = try parse("listen 127.0.0.1:8443 tls { certificate a.pem; key a.key; client_ca ca.pem; }\npublic_origin https://a.example;")
        #expect(c.listen[0].tls?.verifyClient == .optional)
        let off = try parse("listen 127.0.0.1:8443 tls { certificate a.pem; key a.key; client_ca ca.pem; verify_client off; }\npublic_origin https://a.example;")
        #expect(off.listen[0].tls?.verifyClient == .off)
        #expect(off.listen[0].tls?.clientCA == nil)
    }

    @Test func tlsListenerErrorsNameTheLine() {
        let https = "\npublic_origin https://a.example;"
        let cases: [(String, Int, String)] = [
            ("listen 127.0.0.1:8443 tls;" + https, 1, "listen … tls needs a block: tls { certificate FILE; key FILE; }"),
            ("listen 127.0.0.1:8443 tls {\n certificate a.pem;\n}" + https, 1, "tls needs both certificate and key"),
            ("listen 127.0.0.1:8443 tls {\n certificate a.pem;\n key k;\n key k;\n}" + https, 4, "'key' is duplicate in this tls block"),
            ("listen 127.0.0.1:8443 tls {\n certificate a.pem; key k;\n ciphers ALL;\n}" + https, 3,
             "unknown directive 'ciphers' in tls (certificate, key, client_ca, verify_client)"),
            ("listen 127.0.0.1:8443 tls { certificate a; key k; verify_client required; }" + https, 1, "verify_client required needs client_ca"),
            ("listen 127.0.0.1:8443 tls { certificate a; key k; client_ca c;\n verify_client maybe; }" + https, 2,
             "verify_client is off, optional or required"),
            ("listen 127.0.0.1:8443 ssl { certificate a; key k; }" + https, 1, "unknown listen parameter 'ssl' (tls?)"),
            ("listen 127.0.0.1:8443 { certificate a; key k; }" + https, 1, "a listen block is for TLS: listen 127.0.0.1:8443 tls { … }"),
            ("listen 127.0.0.1:8443 tls { certificate a; key k; }\npublic_origin http://a.example;", 1,
             "listen 127.0.0.1:8443 terminates TLS but public_origin is http://a.example; use https://"),
        ]
        for (text, line, message) in cases {
            #expect(throws: ConfigError(file: "proxy.conf", line: line, message: message), "\(text)") { try parse(text) }
        }
    }

    @Test func parsesOAuthIssuers() throws {
        let c = try parse("""
        oauth_issuer https://as.example/t {
            audience https://api.example;
            jwks_uri https://as.example/jwks;
            refresh 1m;
            kid_cooldown 10s;
            max_act_depth 2;
            introspection_endpoint https://as.example/introspect;
            client_id rs;
            client_secret "a secret";
            introspection_cache 30s;
        }
        oauth_issuer https://other.example;
        route /open/ { effect allow; allow_bearer on; }
        """)
        #expect(c.oauthIssuers.count == 2)
        let i = c.oauthIssuers[0]
        #expect(i.issuer == "https://as.example/t" && i.audience == "https://api.example" && i.jwksURI == "https://as.example/jwks")
        #expect(i.keys.refresh == 60 && i.keys.kidCooldown == 10 && i.maxActDepth == 2)
        #expect(i.introspection == { var x = ProxyConfig.Introspection(endpoint: "https://as.example/introspect", clientID: "rs",
                                                                        clientSecret: "a secret"); x.cache = 30; return x }())
        #expect(c.oauthIssuers[1].introspection == nil && c.routes[0].allowBearer)
        let cases: [(String, String)] = [
            ("oauth_issuer http://as.example;", "proxy.conf:1: oauth_issuer must be an https URL without query or fragment"),
            ("oauth_issuer https://a.example;\noauth_issuer https://a.example;", "proxy.conf:2: oauth_issuer https://a.example is duplicate"),
            ("oauth_issuer https://a.example { client_id x; }", "proxy.conf:1: introspection needs introspection_endpoint, client_id and client_secret together"),
            ("oauth_issuer https://a.example { introspection_endpoint https://a.example/i; client_id x; client_secret y; }\n"
             + "oauth_issuer https://b.example { introspection_endpoint https://b.example/i; client_id x; client_secret y; }",
             "proxy.conf:2: only one oauth_issuer may introspect opaque tokens"),
            ("oauth_issuer https://a.example {\n jwks_uri http://a.example/jwks;\n}", "proxy.conf:2: jwks_uri must be an https URL"),
            ("route / { effect allow; allow_bearer yes; }", "proxy.conf:1: 'yes' is not on or off"),
        ]
        for (text, message) in cases { #expect(error(text) == message, "\(text)") }
    }

    @Test func parsesTxnTokenAndAdminListen() throws {
        let c = try ConfigParser.parse("""
        upstream http://127.0.0.1:9000;
        public_origin https://a.example;
        admin_listen 127.0.0.1:9901;
        txn_token { keys k2.jwk /etc/k1.jwk; trust_domain https://trust.example; workload gw; ttl 30s; }
        """, file: "/etc/mandate/proxy.conf")
        #expect(c.adminListen == ProxyConfig.Listen(host: "127.0.0.1", port: 9901))
        var t = ProxyConfig.TxnToken(keyFiles: ["/etc/mandate/k2.jwk", "/etc/k1.jwk"], trustDomain: "https://trust.example")
        t.workload = "gw"; t.ttl = 30
        #expect(c.txnToken == t)
        #expect(error("txn_token { keys a.jwk; }") == "proxy.conf:1: txn_token needs keys and trust_domain")
        #expect(error("txn_token {\n keys a.jwk;\n trust_domain d;\n ttl 0s;\n}") == "proxy.conf:4: ttl must be above 0")
    }

    /// Found by a new user: these passed --check and failed only at bind.
    @Test func listenAddressesAreNotShared() {
        #expect(error("listen 127.0.0.1:8443;\nlisten 127.0.0.1:8443;") == "proxy.conf:2: listen 127.0.0.1:8443 is duplicate (first at line 1)")
        #expect(error("listen 127.0.0.1:8080;\nadmin_listen 127.0.0.1:8080;")
                == "proxy.conf:2: admin_listen 127.0.0.1:8080 is also a listen address; the admin listener needs its own")
        #expect(error("listen 127.0.0.1:0;\nlisten 127.0.0.1:0;") == nil)  // port 0: each gets its own
    }

    @Test func organizationScopesAndTxnKeysAreChecked() {
        let org = "organization did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp { name P; principals *@p.example;\n"
        #expect(error(org + " max_scope;\n}") == "proxy.conf:2: max_scope needs at least one scope")
        #expect(error(org + #" max_scope 'a"c';"# + "\n}") == #"proxy.conf:2: 'a"c' is not an RFC 6749 scope token"#)
        #expect(error("txn_token {\n keys a.jwk a.jwk;\n trust_domain d;\n}") == "proxy.conf:2: key file a.jwk is listed twice")
    }

    @Test func parsesAudit() throws {
        let c = try ConfigParser.parse("upstream http://127.0.0.1:9;\npublic_origin https://a.example;\n"
                                       + "audit { file audit.jsonl; key /k/audit.jwk; checkpoint_every 10; max_size 1m; }", file: "/etc/m/p.conf")
        var a = ProxyConfig.Audit(file: "/etc/m/audit.jsonl", key: "/k/audit.jwk")
        a.checkpointEvery = 10; a.maxSize = 1 << 20
        #expect(c.audit == a)
        #expect(error("audit { file a; }") == "proxy.conf:1: audit needs file and key")
    }

    @Test func parsesApprovalCIBAClientsAndWebhooks() throws {
        let c = try ConfigParser.parse("""
            upstream http://127.0.0.1:9;
            public_origin https://a.example;
            approval_wait 45s;
            principal \(alice) { name "Alice"; webhook https://ntfy.example/alice; }
            approval { listen 127.0.0.1:9902; public_url https://approve.example; key approval.jwk; expires_in 2m; interval 3s; }
            ciba_client shop { secret_file shop.secret; }
            ciba_client bank { secret_file /s/bank.secret; delivery ping; notification_endpoint https://bank.example/cb; }
            route /payments { effect approve; approval_wait 10s; }
            """, file: "/etc/m/p.conf")
        #expect(c.approvalWait == 45)
        #expect(c.routes.first?.approvalWait == 10)
        #expect(c.principals == [.init(did: alice, name: "Alice", webhook: "https://ntfy.example/alice")])
        var a = ProxyConfig.Approval(listen: .init(host: "127.0.0.1", port: 9902), publicURL: "https://approve.example",
                                     key: "/etc/m/approval.jwk")
        a.expiresIn = 120; a.interval = 3
        #expect(c.approval == a)
        var bank = ProxyConfig.CIBAClient(id: "bank", secretFile: "/s/bank.secret")
        bank.delivery = .ping; bank.notificationEndpoint = "https://bank.example/cb"
        #expect(c.cibaClients == [ProxyConfig.CIBAClient(id: "shop", secretFile: "/etc/m/shop.secret"), bank])
        // public_url defaults to the listen address.
        let d = try parse("approval { listen 127.0.0.1:9902; key k.jwk; }")
        #expect(d.approval?.publicURL == "http://127.0.0.1:9902")
        #expect(d.approval?.expiresIn == 300 && d.approval?.interval == 5)
    }

    @Test func parsesCIBAProvider() throws {
        let c = try parse("""
            ciba_provider https://idp.example { backchannel_endpoint https://idp.example/bc; token_endpoint https://idp.example/token;
              client_id gw; client_secret_file idp.secret; timeout 2s; allow_private_addresses on; }
            """)
        #expect(c.cibaProvider?.issuer == "https://idp.example" && c.cibaProvider?.clientID == "gw")
        #expect(c.cibaProvider?.fetch.timeout == 2 && c.cibaProvider?.fetch.allowPrivateAddresses == true)
        #expect(error("ciba_provider https://idp.example { client_id gw; }")
                == "proxy.conf:1: ciba_provider needs backchannel_endpoint, token_endpoint, client_id and client_secret_file")
    }

    @Test func approvalAndCIBAClientMistakesAreReported() {
        #expect(error("approval { listen 127.0.0.1:9902; }") == "proxy.conf:1: approval needs key: it signs receipts for decisions made on its page")
        #expect(error("approval { public_url https://a.example; key k; }")
                == "proxy.conf:1: approval needs listen (the built-in service) unless a ciba_provider asks instead")
        #expect(error("approval {\n listen 127.0.0.1:1;\n key k;\n colour red;\n}")
                == "proxy.conf:4: unknown directive 'colour' in approval (listen, public_url, key, expires_in, interval)")
        #expect(error("ciba_client c { secret_file s; delivery ping; }") == "proxy.conf:1: delivery ping needs notification_endpoint (CIBA §4)")
        #expect(error("ciba_client c { secret_file s; delivery push; }") == "proxy.conf:1: delivery is poll or ping")
        #expect(error("ciba_client c { delivery poll; }") == "proxy.conf:1: ciba_client needs secret_file")
        #expect(error("ciba_client c { secret_file s; }\nciba_client c { secret_file t; }") == "proxy.conf:2: ciba_client c is duplicate")
        #expect(error("principal \(alice) { name A; webhook ftp://x; }") == "proxy.conf:1: 'ftp://x' is not an http:// or https:// URL")
        #expect(error("principal \(alice) { name A; webhook \"https://ntfy.sh/#a.b\"; }")
                == "proxy.conf:1: webhook 'https://ntfy.sh/#a.b': the part after # is an ntfy topic: 1 to 64 of A-Z a-z 0-9 - _")
    }

    /// '#' starts a comment, so a webhook naming an ntfy topic in its fragment is quoted.
    @Test func aQuotedWebhookKeepsItsNtfyTopic() throws {
        let c = try parse("listen 127.0.0.1:8080;\npublic_origin https://api.example.com;\nupstream http://127.0.0.1:9000;\n"
                          + "principal \(alice) { name \"Alice\"; webhook \"https://ntfy.sh/#alice-approvals\"; }\nroute / { effect deny; }\n")
        #expect(c.principals.first?.webhook == "https://ntfy.sh/#alice-approvals")
    }
}
