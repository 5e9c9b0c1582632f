import MandateCore
import MandateCrypto
import MandateHTTP
import Synchronization
import Testing

/// The approval page (docs/approvals.md, "The page"): sign-in tokens, sessions, CSRF and origin
/// checks, decisions recorded with the service's receipt, escaping, and the webhook; an explicit
/// clock and no sockets.
struct ApprovalPageTests {
    let alice = SigningKey.generate(.edDSA)
    let bob = SigningKey.generate(.es256)
    let mallory = SigningKey.generate(.edDSA)
    let serviceKey = SigningKey.generate(.es256)
    let now: Int64 = 1_700_000_000
    let issuer = "https://approve.example"

    func request(body: String = #"{"amount":100,"to":"bob"}"#) -> ApprovalRequest {
        ApprovalRequest(principal: alice.did, agent: "did:key:zAgent", chain: [alice.did, "did:key:zAgent"], jtis: ["j1"],
                        method: "POST", url: "https://api.example.com/payments", bodySHA256: Base64URL.encode(SHA256.hash(Array(body.utf8))),
                        bodySummary: body, route: "/payments")
    }

    func service(hooks: Hooks? = nil, issuer: String? = nil) -> ApprovalService {
        let principals = [ProxyConfig.Principal(did: alice.did, name: "Alice", webhook: "https://ntfy.example/#alice-approvals"),
                          ProxyConfig.Principal(did: bob.did, name: "Bob")]
        return ApprovalService(settings: .init(requests: .init(expiresIn: 300, interval: 5), issuer: issuer ?? self.issuer),
                               key: serviceKey, clients: [CIBAClientCredentials(id: "shop", secret: Array("s".utf8))],
                               principals: ConfiguredPrincipals({ principals }),
                               webhook: { w in hooks?.sent.withLock { $0.append(w) } }, schedule: { _, _ in }, clock: { 0 })
    }

    func pending(_ s: ApprovalService, _ r: ApprovalRequest? = nil) -> (String, Readiness) {
        guard case .pending(let id, let ready) = s.submit(r ?? request(), id: nil, now: now) else { fatalError("not pending") }
        return (id, ready)
    }

    func login(_ key: SigningKey, principal: String? = nil, audience: String? = nil, at: Int64? = nil, ttl: Int64 = 300,
               jti: String = Base64URL.encode(Random.bytes(16))) -> String {
        ApprovalLogin.sign(key: key, principal: principal ?? key.did, kid: nil, audience: audience ?? issuer, issuedAt: at ?? now,
                           ttl: ttl, jti: jti)
    }

    func get(_ e: ApprovalEndpoints, _ path: Substring, query: Substring? = nil, cookie: String? = nil,
             headers: [HTTPHeader] = []) -> ApprovalResponse {
        e.respond(method: "GET", path: path, query: query, headers: headers + (cookie.map { [HTTPHeader("Cookie", "__Host-mandate_approval=\($0)")] } ?? []),
                  body: [], now: now)
    }

    func decide(_ e: ApprovalEndpoints, _ id: String, cookie: String?, csrf: String, decision: String = "approve",
                headers: [HTTPHeader] = []) -> ApprovalResponse {
        var h = [HTTPHeader("Content-Type", "application/x-www-form-urlencoded")] + headers
        // Both names: an https service reads the __Host- one, an http one the other.
        if let cookie { h.append(HTTPHeader("Cookie", "theme=dark; __Host-mandate_approval=\(cookie); mandate_approval=\(cookie)")) }
        return e.respond(method: "POST", path: "/approvals/\(id)/web-decision"[...], headers: h,
                         body: Array("decision=\(decision)&csrf=\(FormURLEncoded.encode(csrf))".utf8), now: now + 1)
    }

    func field(_ r: ApprovalResponse, _ name: String) -> String? { r.fields.first { $0.0 == name }?.1 }
    func text(_ r: ApprovalResponse) -> String { String(decoding: r.body, as: UTF8.self) }

    /// Signs in through `GET /login`: the cookie value and the session's csrf token.
    func signIn(_ e: ApprovalEndpoints, _ key: SigningKey) -> (String, String) {
        let r = get(e, "/login", query: "token=" + login(key))
        let cookie = field(r, "Set-Cookie")!.split(separator: ";")[0].split(separator: "=")[1]
        let s = e.service.session(cookie: String(cookie), now: now)!
        return (String(cookie), s.csrf)
    }

    // MARK: signing in

    @Test func aSignInTokenIsVerifiedWithThePrincipalsEnrolledKeyOnly() {
        let s = service()
        #expect((try? s.authenticate(loginToken: Array(login(alice).utf8), now: now).get()) == alice.did)
        // Another key claiming to be Alice.
        guard case .failure(let r) = s.authenticate(loginToken: Array(login(mallory, principal: alice.did).utf8), now: now) else {
            Issue.record("forged sign-in accepted"); return
        }
        #expect(r.status == 401 && r.description.contains("not signed by"))
        // A key in the header is never used.
        let withJWK = mallory.compactJWS(header: [("typ", .string(ApprovalLogin.mediaType)), ("jwk", .object(mallory.publicJWK))],
                                         claims: JSONObject(members: [("iss", .string(alice.did)), ("aud", .string(issuer)),
                                                                      ("iat", .integer(now)), ("exp", .integer(now + 60)), ("jti", .string("x"))]))
        #expect(throws: PageRefusal.self) { try s.authenticate(loginToken: Array(withJWK.utf8), now: now).get() }
        // Someone who is not a principal here, with their own key.
        #expect(throws: PageRefusal.self) { try s.authenticate(loginToken: Array(login(mallory).utf8), now: now).get() }
    }

    @Test func aSignInTokenIsSpentOnce() {
        let s = service()
        let token = Array(login(alice).utf8)
        #expect((try? s.authenticate(loginToken: token, now: now).get()) == alice.did)
        guard case .failure(let r) = s.authenticate(loginToken: token, now: now + 1) else { Issue.record("replayed"); return }
        #expect(r.code == .invalidLogin && r.description.contains("already used"))
    }

    @Test func refusesExpiredLongLivedFutureAndOtherAudienceTokens() {
        let s = service()
        func refused(_ t: String) -> String? {
            if case .failure(let r) = s.authenticate(loginToken: Array(t.utf8), now: now) { return r.description }
            return nil
        }
        #expect(refused(login(alice, at: now - 700, ttl: 600))?.contains("expired") == true)
        #expect(refused(login(alice, audience: "https://elsewhere.example"))?.contains("another approval service") == true)
        #expect(refused(login(alice, at: now + 120))?.contains("future") == true)
        let long = alice.compactJWS(header: [("typ", .string(ApprovalLogin.mediaType))], claims: JSONObject(members: [
            ("iss", .string(alice.did)), ("aud", .string(issuer)), ("iat", .integer(now)), ("exp", .integer(now + 3600)), ("jti", .string("j")),
        ]))
        #expect(refused(long)?.contains("at most 600") == true)
        let delegationTyped = alice.compactJWS(header: [("typ", .string("delegation+jwt"))], claims: JSONObject(members: [
            ("iss", .string(alice.did)), ("aud", .string(issuer)), ("iat", .integer(now)), ("exp", .integer(now + 60)), ("jti", .string("j")),
        ]))
        #expect(refused(delegationTyped)?.contains("typ") == true)
    }

    /// A signed token whose iat is Int64.min made `exp - iat` overflow, and the trap took down the
    /// whole proxy: dates outside 0...9999-12-31 are refused before any arithmetic (RFC 7519 §2).
    @Test func refusesSignInDatesOutOfRangeWithoutArithmeticOnThem() {
        let s = service()
        for (iat, exp) in [(Int64.min, now + 60), (-1, now + 60), (now, Int64.max), (now, 253_402_300_800)] {
            let t = alice.compactJWS(header: [("typ", .string(ApprovalLogin.mediaType))], claims: JSONObject(members: [
                ("iss", .string(alice.did)), ("aud", .string(issuer)), ("iat", .integer(iat)), ("exp", .integer(exp)),
                ("jti", .string("j\(iat)\(exp)")),
            ]))
            guard case .failure(let r) = s.authenticate(loginToken: Array(t.utf8), now: now) else {
                Issue.record("iat \(iat) exp \(exp) accepted"); continue
            }
            #expect(r.code == .invalidLogin && r.status == 401)
        }
    }

    @Test func loginSetsAStrictHttpOnlyCookieSecureOverHTTPS() {
        let e = ApprovalEndpoints(service())
        let r = get(e, "/login", query: "token=" + login(alice))
        #expect(r.status == 200 && field(r, "Referrer-Policy") == "no-referrer")
        let c = field(r, "Set-Cookie") ?? ""
        #expect(c.hasPrefix("__Host-mandate_approval=") && c.hasSuffix("; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200; Secure"))
        let plain = ApprovalEndpoints(service(issuer: "http://127.0.0.1:9902"))
        let p = get(plain, "/login", query: "token=" + login(alice, audience: "http://127.0.0.1:9902"))
        #expect(field(p, "Set-Cookie")?.hasSuffix("Max-Age=43200") == true)
        // A refusal sets nothing.
        let bad = get(e, "/login", query: "token=" + login(mallory))
        #expect(bad.status == 401 && field(bad, "Set-Cookie") == nil && field(bad, "Mandate-Request-Id") != nil)
    }

    // MARK: sessions

    @Test func sessionsKeepNoCookieAndAreBounded() {
        var t = ApprovalSessions(capacity: 2)
        let (a, _) = t.open(principal: "did:a", now: now)
        let (b, _) = t.open(principal: "did:b", now: now + 1)
        let (c, _) = t.open(principal: "did:c", now: now + 2)
        #expect(t.count == 2)
        #expect(t.session(cookie: a, now: now + 3) == nil)  // the one closest to its expiry made room
        #expect(t.session(cookie: b, now: now + 3)?.principal == "did:b" && t.session(cookie: c, now: now + 3)?.principal == "did:c")
        #expect(t.session(cookie: c, now: now + 2 + ApprovalSessions.lifetime) == nil)
        t.close(cookie: b)
        #expect(t.session(cookie: b, now: now + 3) == nil)
    }

    @Test func aCookieSentTwiceNamesNoSession() {
        #expect(ApprovalSessions.cookie(in: ["a=1; mandate_approval=xyz"]) == "xyz")
        #expect(ApprovalSessions.cookie(in: ["mandate_approval=xyz; mandate_approval=abc"]) == nil)
        #expect(ApprovalSessions.cookie(in: ["mandate_approval=xyz", "mandate_approval=xyz"]) == nil)
        #expect(ApprovalSessions.cookie(in: ["xmandate_approval=xyz"]) == nil)
        // Over https only the __Host- cookie counts: a plain one may have been planted by a sibling host.
        #expect(ApprovalSessions.cookieName(secure: true) == "__Host-mandate_approval")
        #expect(ApprovalSessions.cookie(in: ["mandate_approval=xyz"], named: ApprovalSessions.cookieName(secure: true)) == nil)
        #expect(ApprovalSessions.cookie(in: ["__Host-mandate_approval=xyz"], named: ApprovalSessions.cookieName(secure: true)) == "xyz")
    }

    // MARK: deciding

    @Test func aDecisionOnThePageWakesTheHeldRequestWithTheServicesReceipt() throws {
        let s = service()
        let e = ApprovalEndpoints(s)
        let (id, ready) = pending(s)
        let fired = Mutex(false)
        ready.whenReady { fired.withLock { $0 = true } }
        let (cookie, csrf) = signIn(e, alice)
        let r = decide(e, id, cookie: cookie, csrf: csrf, headers: [HTTPHeader("Origin", issuer), HTTPHeader("Sec-Fetch-Site", "same-origin")])
        #expect(r.status == 303 && field(r, "Location") == issuer + "/?decided=approved")
        #expect(fired.withLock { $0 })
        guard case .approved(let receipt) = s.submit(request(), id: id, now: now + 2) else { Issue.record("not approved"); return }
        #expect(receipt.approver == alice.did && receipt.id == id)
        #expect(receipt.hash == Base64URL.encode(SHA256.hash(Array(receipt.token.utf8))))
        let jws = try CompactJWS.parse(Array(receipt.token.utf8)[...]).get()
        #expect(throws: Never.self) { try jws.verify(with: serviceKey.verificationKey).get() }
        #expect(jws.header["typ"]?.string == SignedDecision.mediaType && jws.header["kid"]?.string == serviceKey.thumbprint)
        let c = jws.claims
        #expect(c["iss"]?.string == issuer && c["sub"]?.string == id && c["approver"]?.string == alice.did)
        #expect(c["via"]?.string == "web" && c["decision"]?.string == "approve")
        #expect(c["request"]?.object.flatMap(BoundRequest.init(json:)) == BoundRequest(request()))
        // The principal's own receipt check refuses it: it is not signed by Alice.
        let subject = SignedDecision.Subject(id: id, principal: alice.did, bindingMessage: c["binding_message"]!.string!,
                                             request: BoundRequest(request()), openedAt: now, expiresAt: now + 300)
        #expect(throws: Reason.self) { try SignedDecision.verify(receipt.token, on: subject, key: alice.verificationKey, now: now + 2).get() }
    }

    @Test func onlyTheSignedInPrincipalWithTheSessionsCSRFTokenFromThisOriginDecides() {
        let s = service()
        let e = ApprovalEndpoints(s)
        let (id, _) = pending(s)
        let (cookie, csrf) = signIn(e, alice)
        #expect(decide(e, id, cookie: nil, csrf: csrf).status == 401)                 // the agent knows the id, not the cookie
        #expect(decide(e, id, cookie: "A" + cookie.dropFirst(), csrf: csrf).status == 401)
        #expect(decide(e, id, cookie: cookie, csrf: "A" + csrf.dropFirst()).status == 403)
        #expect(decide(e, id, cookie: cookie, csrf: "").status == 403)
        #expect(decide(e, id, cookie: cookie, csrf: csrf, headers: [HTTPHeader("Origin", "https://evil.example")]).status == 403)
        #expect(decide(e, id, cookie: cookie, csrf: csrf, headers: [HTTPHeader("Origin", "null")]).status == 403)
        #expect(decide(e, id, cookie: cookie, csrf: csrf, headers: [HTTPHeader("Sec-Fetch-Site", "same-site")]).status == 403)
        #expect(decide(e, id, cookie: cookie, csrf: csrf, decision: "maybe").status == 400)
        let (bobCookie, bobCSRF) = signIn(e, bob)
        let other = decide(e, id, cookie: bobCookie, csrf: bobCSRF)
        #expect(other.status == 403 && text(other).contains("not_your_approval"))
        #expect(s.details(id, now: now)?["state"]?.string == "pending")
        #expect(decide(e, id, cookie: cookie, csrf: csrf, decision: "deny").status == 303)
        let again = decide(e, id, cookie: cookie, csrf: csrf)
        #expect(again.status == 403 && text(again).contains("already_decided"))
        guard case .denied(_, let approver) = s.submit(request(), id: id, now: now + 2) else { Issue.record("not denied"); return }
        #expect(approver == alice.did)
    }

    /// A browser's Origin omits the default port (RFC 6454 §6.2); a public_url that spells it out
    /// (`https://approve.example:443`) made every decision on the page a cross_origin_request.
    @Test func theOriginCheckIgnoresADefaultPortSpelledOutInPublicURL() {
        for (url, origin, other) in [("https://approve.example:443", "https://approve.example", "https://approve.example:8443"),
                                     ("http://approve.example:80/base", "http://approve.example", "http://approve.example:8080")] {
            let s = service(issuer: url)
            let e = ApprovalEndpoints(s)
            let (id, _) = pending(s)
            let r = get(e, "/login", query: "token=" + login(alice, audience: url))
            let cookie = String(field(r, "Set-Cookie")!.split(separator: ";")[0].split(separator: "=")[1])
            let csrf = s.session(cookie: cookie, now: now)!.csrf
            #expect(decide(e, id, cookie: cookie, csrf: csrf, headers: [HTTPHeader("Origin", other)]).status == 403)
            #expect(decide(e, id, cookie: cookie, csrf: csrf, headers: [HTTPHeader("Origin", origin)]).status == 303)
        }
    }

    @Test func anExpiredApprovalCannotBeDecided() {
        let s = service()
        let (id, _) = pending(s)
        guard case .failure(let r) = s.decideOnPage(id, .approve, principal: alice.did, now: now + 301) else { Issue.record("decided"); return }
        #expect(r.code == .approvalExpired && r.status == 403)
        guard case .failure(let u) = s.decideOnPage("nope", .approve, principal: alice.did, now: now) else { Issue.record("decided"); return }
        #expect(u.status == 404)
    }

    // MARK: the page

    @Test func thePageListsOnlyThePrincipalsPendingApprovalsNewestFirstEscaped() {
        let s = service()
        let e = ApprovalEndpoints(s)
        let (older, _) = pending(s, request(body: #"{"amount":1}"#))
        guard case .pending(let newer, _) = s.submit(request(body: #"{"note":"<script>alert(1)</script>"}"#), id: nil, now: now + 5) else { return }
        let (cookie, _) = signIn(e, alice)
        let page = text(get(e, "/", cookie: cookie))
        let a = page.firstRange(of: "data-id=\"\(newer)\"")!, b = page.firstRange(of: "data-id=\"\(older)\"")!
        #expect(a.lowerBound < b.lowerBound)
        #expect(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !page.contains("<script>"))
        #expect(page.contains("action=\"approvals/\(newer)/web-decision\""))
        let (bobCookie, _) = signIn(e, bob)
        #expect(!text(get(e, "/", cookie: bobCookie)).contains("data-id="))
        let anonymous = get(e, "/")
        #expect(anonymous.status == 200 && text(anonymous).contains("Not signed in") && !text(anonymous).contains(older))
        #expect(field(anonymous, "Content-Security-Policy") == "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
        #expect(field(anonymous, "X-Content-Type-Options") == "nosniff" && field(anonymous, "Cache-Control") == "no-store")
    }

    @Test func listNeedsAFreshSignInTokenAsBearer() {
        let s = service()
        let e = ApprovalEndpoints(s)
        let (id, _) = pending(s)
        let token = login(alice)
        let r = get(e, "/approvals", headers: [HTTPHeader("Authorization", "Bearer " + token)])
        #expect(r.status == 200 && text(r).contains(id))
        let replay = get(e, "/approvals", headers: [HTTPHeader("Authorization", "Bearer " + token)])
        #expect(replay.status == 401 && text(replay).contains("invalid_token") && field(replay, "WWW-Authenticate")?.hasPrefix("Bearer") == true)
        #expect(get(e, "/approvals").status == 401)
    }

    @Test func escapesMarkupAndQuotes() {
        #expect(ApprovalPage.escape(#"<a href="x">'&'</a>"#) == "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;")
    }

    // MARK: the webhook

    @Test func aWebhookGoesToThePrincipalWhenAnApprovalOpens() throws {
        let hooks = Hooks()
        let s = service(hooks: hooks)
        let (id, _) = pending(s)
        var bobs = request()
        bobs.principal = bob.did
        _ = s.submit(bobs, id: nil, now: now)  // Bob has no webhook
        _ = try s.authorize(client: CIBAClientCredentials(id: "shop", secret: []), ["scope": "openid", "login_hint": "Alice",
                                                                                      "binding_message": "pay 5 EUR"], now: now).get()
        let sent = hooks.sent.withLock { $0 }
        #expect(sent.count == 2 && sent.allSatisfy { $0.endpoint == "https://ntfy.example/" })
        let o = try StrictJSON.parseObject(sent[0].body).get()
        #expect(o["topic"]?.string == "alice-approvals" && o["click"]?.string == issuer + "/")
        #expect(o["title"]?.string == "Approval needed" && o["text"]?.string?.contains("amount=100 to=bob") == true)
        #expect(o["text"]?.string?.contains(issuer + "/") == true)
        #expect(o["approval"]?.object?["id"]?.string == id && o["approval"]?.object?["url"]?.string == "https://api.example.com/payments")
        let ciba = try StrictJSON.parseObject(sent[1].body).get()
        #expect(ciba["message"]?.string == "pay 5 EUR" && ciba["approval"]?.object?["client"]?.string == "shop")
    }

    /// An agent's body becomes the message: in Slack's `text`, `<https://evil|Approve>` would be a
    /// disguised link and `<!channel>` a mention of everyone, unless &, < and > are escaped.
    @Test func aWebhooksSlackTextCarriesNoLinkOrMentionAnAgentWrote() throws {
        let hooks = Hooks()
        let s = service(hooks: hooks)
        _ = pending(s, request(body: #"{"to":"<https://evil.example/|ACME> <!channel>","amount":1}"#))
        let o = try StrictJSON.parseObject(hooks.sent.withLock { $0 }[0].body).get()
        let text = try #require(o["text"]?.string)
        #expect(!text.contains("<") && !text.contains(">"))
        #expect(text.contains("&lt;https://evil.example/|ACME&gt; &lt;!channel&gt;"))
        #expect(o["message"]?.string?.contains("<!channel>") == true)  // ntfy shows plain text as is
    }

    @Test func aFragmentThatIsNoTopicIsNotSent() throws {
        var r = BackchannelRequests(settings: .init())
        let entry = try r.open(client: .proxy, principal: "did:a", bindingMessage: "m", now: now).get()
        let plain = ApprovalWebhook(webhook: "https://hooks.slack.example/services/T/B/X", entry: entry, page: "https://a/")
        #expect(plain.endpoint == "https://hooks.slack.example/services/T/B/X")
        #expect(try StrictJSON.parseObject(plain.body).get()["topic"] == nil)
        let odd = ApprovalWebhook(webhook: "https://ntfy.example/#not a topic!", entry: entry, page: "https://a/")
        #expect(odd.endpoint == "https://ntfy.example/")
        #expect(try StrictJSON.parseObject(odd.body).get()["topic"] == nil)
    }
}

final class Hooks: Sendable {
    let sent = Mutex<[ApprovalWebhook]>([])
}
