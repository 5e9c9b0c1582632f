import Testing
@testable import MandateCore
import MandateHTTP

/// What the upstream receives: no credentials, no hop-by-hop fields, no client-made identity.
@Suite struct UpstreamHeadersTests {
    let chain = VerifiedChain(principal: "did:key:zAlice", agent: "did:key:zAgent",
                              dids: ["did:key:zAlice", "did:key:zMiddle", "did:key:zAgent"], scopes: ["read", "write"],
                              proofKeyThumbprint: "", notBefore: 0, expiresAt: .max, ancestry: [])

    func rewrite(_ headers: [HTTPHeader], peer: String = "203.0.113.9", trusted: [String] = []) throws -> [HTTPHeader] {
        let head = HTTPRequestHead(method: "GET", target: "/x", headers: [HTTPHeader("Host", "proxy.example")] + headers)
        return UpstreamHeaders(trustedProxies: try TrustedProxies(trusted))
            .rewrite(head, chain: chain, requestID: "req-1", peer: peer, scheme: "https")
    }

    func values(_ hs: [HTTPHeader], _ name: String) -> [String] {
        hs.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
    }

    @Test func removesCredentials() throws {
        let out = try rewrite([HTTPHeader("Authorization", "DPoP x"), HTTPHeader("DPoP", "p"),
                               HTTPHeader("agent-delegation", "a, b"), HTTPHeader("Accept", "*/*")])
        for n in ["authorization", "dpop", "agent-delegation"] { #expect(values(out, n).isEmpty, "\(n)") }
        #expect(values(out, "Accept") == ["*/*"])
    }

    /// The agent's Approval-Id is for the proxy; the upstream gets Mandate-Approval (the receipt) instead.
    @Test func removesApprovalIdAndClientMadeApproval() throws {
        let out = try rewrite([HTTPHeader("Approval-Id", "abc"), HTTPHeader("Mandate-Approval", "forged")])
        #expect(values(out, "approval-id").isEmpty)
        #expect(values(out, "mandate-approval").isEmpty)
    }

    @Test func removesUnderscoreSpellingOfAgentDelegation() throws {
        let out = try rewrite([HTTPHeader("Agent_Delegation", "a"), HTTPHeader("DPOP", "p")])
        #expect(out.allSatisfy { UpstreamHeaders.canonicalName($0.name) != "agent-delegation" })
        #expect(values(out, "dpop").isEmpty)
    }

    @Test func removesHopByHopFields() throws {
        let out = try rewrite([HTTPHeader("Connection", "keep-alive"), HTTPHeader("Keep-Alive", "timeout=5"),
                               HTTPHeader("TE", "trailers"), HTTPHeader("Trailer", "x"), HTTPHeader("Upgrade", "h2c"),
                               HTTPHeader("Proxy-Authorization", "Basic x"), HTTPHeader("Proxy-Connection", "close"),
                               HTTPHeader("Transfer-Encoding", "chunked"), HTTPHeader("Content-Length", "5")])
        let names = Set(out.map { $0.name.lowercased() })
        for n in ["connection", "keep-alive", "te", "trailer", "upgrade", "proxy-authorization", "proxy-connection",
                  "transfer-encoding", "content-length"] {
            #expect(!names.contains(n), "\(n)")
        }
    }

    @Test func removesFieldsNamedInConnection() throws {
        let out = try rewrite([HTTPHeader("Connection", "X-Secret, x_other"), HTTPHeader("x-secret", "1"),
                               HTTPHeader("X-Other", "2"), HTTPHeader("X-Kept", "3")])
        #expect(values(out, "X-Secret").isEmpty)
        #expect(values(out, "X-Other").isEmpty)
        #expect(values(out, "X-Kept") == ["3"])
    }

    @Test func keepsProxyAddedMandateHeadersEvenIfNamedInConnection() throws {
        let out = try rewrite([HTTPHeader("Connection", "Mandate-Principal, Mandate-Agent, X-Forwarded-For")])
        #expect(values(out, "Mandate-Principal") == ["did:key:zAlice"])
        #expect(values(out, "Mandate-Agent") == ["did:key:zAgent"])
        #expect(values(out, "X-Forwarded-For") == ["203.0.113.9"])
    }

    @Test func setsMandateIdentityHeaders() throws {
        let out = try rewrite([])
        #expect(values(out, "Mandate-Principal") == ["did:key:zAlice"])
        #expect(values(out, "Mandate-Agent") == ["did:key:zAgent"])
        #expect(values(out, "Mandate-Chain") == ["did:key:zAlice,did:key:zMiddle,did:key:zAgent"])
        #expect(values(out, "Mandate-Scope") == ["read write"])
        #expect(values(out, "Mandate-Request-Id") == ["req-1"])
    }

    @Test func dropsClientSuppliedMandateHeadersInAnySpelling() throws {
        let out = try rewrite([HTTPHeader("Mandate-Principal", "did:key:zMallory"), HTTPHeader("mandate-agent", "evil"),
                               HTTPHeader("Mandate_Chain", "evil"), HTTPHeader("MANDATE-SCOPE", "admin"),
                               HTTPHeader("Mandate-Request-Id", "forged"), HTTPHeader("mandate_principal", "x")])
        for (n, v) in [("Mandate-Principal", "did:key:zAlice"), ("Mandate-Agent", "did:key:zAgent"),
                       ("Mandate-Scope", "read write"), ("Mandate-Request-Id", "req-1")] {
            #expect(out.filter { UpstreamHeaders.canonicalName($0.name) == n.lowercased() }.map(\.value) == [v], "\(n)")
        }
        #expect(out.filter { UpstreamHeaders.canonicalName($0.name) == "mandate-chain" }.count == 1)
    }

    @Test func replacesForwardingHeadersFromUntrustedPeer() throws {
        let out = try rewrite([HTTPHeader("X-Forwarded-For", "1.2.3.4"), HTTPHeader("X-Forwarded-Proto", "http"),
                               HTTPHeader("X-Forwarded-Host", "evil.example"), HTTPHeader("Forwarded", "for=1.2.3.4"),
                               HTTPHeader("X-Real-IP", "1.2.3.4")],
                              peer: "203.0.113.9", trusted: ["10.0.0.0/8"])
        #expect(values(out, "X-Forwarded-For") == ["203.0.113.9"])
        #expect(values(out, "X-Forwarded-Proto") == ["https"])
        #expect(values(out, "X-Forwarded-Host") == ["proxy.example"])
        #expect(values(out, "Forwarded").isEmpty)
        #expect(values(out, "X-Real-IP").isEmpty)
    }

    @Test func appendsToForwardingHeadersFromTrustedCIDRPeer() throws {
        let out = try rewrite([HTTPHeader("X-Forwarded-For", "198.51.100.7"), HTTPHeader("X-Forwarded-For", "10.9.9.9"),
                               HTTPHeader("X-Forwarded-Proto", "http"), HTTPHeader("X-Forwarded-Host", "api.example")],
                              peer: "10.1.2.3", trusted: ["10.0.0.0/8"])
        #expect(values(out, "X-Forwarded-For") == ["198.51.100.7, 10.9.9.9, 10.1.2.3"])
        #expect(values(out, "X-Forwarded-Proto") == ["http"])
        #expect(values(out, "X-Forwarded-Host") == ["api.example"])
    }

    @Test func ignoresUnderscoreForwardingHeadersEvenFromTrustedPeer() throws {
        let out = try rewrite([HTTPHeader("X_Forwarded_For", "6.6.6.6")], peer: "10.1.2.3", trusted: ["10.0.0.0/8"])
        #expect(values(out, "X-Forwarded-For") == ["10.1.2.3"])
        #expect(out.allSatisfy { $0.name != "X_Forwarded_For" })
    }

    @Test func trustedProxiesMatchIPv4CIDR() throws {
        let t = try TrustedProxies(["10.0.0.0/8", "192.168.1.7", "172.16.0.0/12"])
        #expect(t.contains("10.255.0.1"))
        #expect(!t.contains("11.0.0.1"))
        #expect(t.contains("192.168.1.7"))
        #expect(!t.contains("192.168.1.8"))
        #expect(t.contains("172.31.255.255"))
        #expect(!t.contains("172.32.0.0"))
        #expect(!t.contains("not an address"))
    }

    @Test func trustedProxiesMatchIPv6CIDR() throws {
        let t = try TrustedProxies(["2001:db8::/32", "::1", "fe80::/10"])
        #expect(t.contains("2001:db8::1"))
        #expect(t.contains("2001:0db8:ffff:0:0:0:0:1"))
        #expect(!t.contains("2001:db9::1"))
        #expect(t.contains("::1"))
        #expect(!t.contains("::2"))
        #expect(t.contains("febf::1"))
        #expect(!t.contains("fec0::1"))
        #expect(!t.contains("10.0.0.1"))
    }

    @Test func noTrustedProxiesTrustsNobody() throws {
        #expect(!(try TrustedProxies([])).contains("127.0.0.1"))
    }

    @Test func zeroPrefixMatchesWholeFamily() throws {
        let t = try TrustedProxies(["0.0.0.0/0"])
        #expect(t.contains("8.8.8.8"))
        #expect(!t.contains("::1"))
    }

    @Test func rejectsMalformedTrustedProxyEntries() {
        for bad in ["10.0.0.0/33", "::/129", "10.0.0", "10.0.0.256", "1:2:3:4:5:6:7:8:9", "1::2::3", "host.example",
                    "10.0.0.0/x"] {
            #expect(throws: Reason.self, "\(bad)") { try TrustedProxies([bad]) }
        }
    }
}

@Test func trustsIPv4MappedPeersAgainstIPv4Blocks() throws {
    let trusted = try TrustedProxies(["10.0.0.0/8"])
    #expect(trusted.contains("::ffff:10.1.2.3"))
    #expect(!trusted.contains("::ffff:11.1.2.3"))
}
