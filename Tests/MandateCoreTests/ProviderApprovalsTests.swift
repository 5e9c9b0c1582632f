import Synchronization
import Testing
@testable import MandateCore

/// The provider's answers, scripted by endpoint; the polls run when the test says.
final class ScriptedProvider: FormPoster {
    let answers = Mutex<[String: [(Int, String)]]>([:])
    let forms = Mutex<[String]>([])
    let scheduled = Mutex<[(Double, @Sendable () -> Void)]>([])

    func post(_ url: String, form: String, user: String, password: String,
              done: @escaping @Sendable (Result<(status: Int, body: [UInt8]), Reason>) -> Void) {
        forms.withLock { $0.append(form) }
        let next = answers.withLock { a -> (Int, String)? in a[url]?.isEmpty == false ? a[url]!.removeFirst() : nil }
        guard let (status, body) = next else { return done(.failure(Reason("unreachable"))) }
        done(.success((status, Array(body.utf8))))
    }

    func answer(_ url: String, _ status: Int, _ body: String) { answers.withLock { $0[url, default: []].append((status, body)) } }

    /// Runs what was scheduled; the intervals asked for.
    func runScheduled() -> [Double] {
        let jobs = scheduled.withLock { s in defer { s = [] }; return s }
        for (_, f) in jobs { f() }
        return jobs.map(\.0)
    }
}

@Suite struct ProviderApprovalsTests {
    static let settings = ProxyConfig.CIBAProvider(issuer: "https://op.example", backchannelEndpoint: "https://op.example/bc",
                                                   tokenEndpoint: "https://op.example/token", clientID: "mandate",
                                                   clientSecretFile: "/dev/null")
    let request = ApprovalRequest(principal: "did:key:alice", agent: "did:key:agent", chain: ["did:key:alice", "did:key:agent"],
                                  jtis: ["j1"], method: "POST", url: "https://api.example/payments", bodySHA256: "h1",
                                  bodySummary: "{\"amount\":250}", route: "/payments")

    func gate(_ p: ScriptedProvider, now: Int64 = 1000) -> ProviderApprovals {
        ProviderApprovals(settings: Self.settings, secret: "s", expiresIn: 120, poster: p,
                          schedule: { [p] s, f in p.scheduled.withLock { $0.append((s, f)) } }, clock: { now })
    }

    static func idToken(aud: String = "mandate", iss: String = "https://op.example", authReqID: String = "r1") -> String {
        let claims = "{\"iss\":\"\(iss)\",\"sub\":\"alice\",\"aud\":\"\(aud)\",\"exp\":99999,\"iat\":1000,\"urn:openid:params:jwt:claim:auth_req_id\":\"\(authReqID)\"}"
        return "eyJhbGciOiJFUzI1NiJ9." + Base64URL.encode(Array(claims.utf8)) + ".c2ln"
    }

    func opened(_ p: ScriptedProvider, _ g: ProviderApprovals) -> String {
        p.answer("https://op.example/bc", 200, "{\"auth_req_id\":\"r1\",\"expires_in\":60,\"interval\":2}")
        guard case .pending(let id, _) = g.submit(request, id: nil, now: 1000) else { Issue.record("not pending"); return "" }
        return id
    }

    @Test func asksByLoginHintWithABindingMessage() {
        let p = ScriptedProvider(), g = gate(p)
        _ = opened(p, g)
        let form = p.forms.withLock { $0[0] }
        #expect(form.hasPrefix("scope=openid&login_hint=did%3Akey%3Aalice&binding_message="))
        #expect(form.hasSuffix("&binding_message=" + Introspector.formEncode("agent did:key:agent: POST https://api.example/payments amount=250")
                               + "&requested_expiry=120"))
    }

    @Test func approvedOnceForExactlyThatRequest() {
        let p = ScriptedProvider(), g = gate(p)
        let id = opened(p, g)
        p.answer("https://op.example/token", 400, "{\"error\":\"authorization_pending\"}")
        p.answer("https://op.example/token", 200, "{\"id_token\":\"\(Self.idToken())\",\"token_type\":\"Bearer\"}")
        #expect(p.runScheduled() == [2])  // the provider's interval
        guard case .pending = g.submit(request, id: id, now: 1002) else { Issue.record("not pending"); return }
        _ = p.runScheduled()
        var other = request
        other.bodySHA256 = "h2"
        guard case .refused = g.submit(other, id: id, now: 1004) else { Issue.record("another body was admitted"); return }
        guard case .approved(let r) = g.submit(request, id: id, now: 1004) else { Issue.record("not approved"); return }
        #expect(r.approver == "alice" && r.id == id)
        guard case .refused = g.submit(request, id: id, now: 1005) else { Issue.record("spent twice"); return }
    }

    @Test func slowDownGrowsTheIntervalByFiveSeconds() {
        let p = ScriptedProvider(), g = gate(p)
        _ = opened(p, g)
        p.answer("https://op.example/token", 400, "{\"error\":\"slow_down\"}")
        _ = p.runScheduled()
        #expect(p.runScheduled() == [7])
    }

    @Test func deniedAndExpiredAreFinal() {
        let p = ScriptedProvider(), g = gate(p)
        let id = opened(p, g)
        p.answer("https://op.example/token", 403, "{\"error\":\"access_denied\"}")
        _ = p.runScheduled()
        guard case .denied = g.submit(request, id: id, now: 1003) else { Issue.record("not denied"); return }
        let q = ScriptedProvider(), h = gate(q)
        let id2 = opened(q, h)
        q.answer("https://op.example/token", 400, "{\"error\":\"expired_token\"}")
        _ = q.runScheduled()
        guard case .expired = h.submit(request, id: id2, now: 1003) else { Issue.record("not expired"); return }
    }

    @Test func anIDTokenForAnotherClientOrRequestIsNotAnApproval() {
        for token in [Self.idToken(aud: "someone-else"), Self.idToken(iss: "https://evil.example"), Self.idToken(authReqID: "r2")] {
            let p = ScriptedProvider(), g = gate(p)
            let id = opened(p, g)
            p.answer("https://op.example/token", 200, "{\"id_token\":\"\(token)\"}")
            _ = p.runScheduled()
            guard case .refused(let d) = g.submit(request, id: id, now: 1003) else { Issue.record("accepted \(token)"); continue }
            #expect(d.code == .accessDenied)
        }
    }

    /// The provider's numbers are input: the largest expires_in neither traps nor outlives ours.
    @Test func aHugeExpiresInFromTheProviderIsBounded() {
        let p = ScriptedProvider(), g = gate(p)
        p.answer("https://op.example/bc", 200, "{\"auth_req_id\":\"r1\",\"expires_in\":9223372036854775807,\"interval\":9223372036854775807}")
        guard case .pending(let id, _) = g.submit(request, id: nil, now: 1000) else { Issue.record("not pending"); return }
        #expect(p.scheduled.withLock { $0.map(\.0) } == [600])  // the poll, at the longest interval
        guard case .pending = g.submit(request, id: id, now: 1000 + 119) else { Issue.record("expired early"); return }
        guard case .expired = g.submit(request, id: id, now: 1000 + 121) else { Issue.record("outlived expires_in 120"); return }
    }

    @Test func anUnreachableProviderIsA503() {
        let p = ScriptedProvider(), g = gate(p)
        guard case .pending(let id, let ready) = g.submit(request, id: nil, now: 1000) else { Issue.record("not pending"); return }
        let fired = Atomic<Bool>(false)
        ready.whenReady { fired.store(true, ordering: .relaxed) }
        let didFire = fired.load(ordering: .relaxed)
        #expect(didFire)
        guard case .refused(let d) = g.submit(request, id: id, now: 1000) else { Issue.record("not refused"); return }
        #expect(d.status == 503 && d.retryAfter != nil)
    }
}
