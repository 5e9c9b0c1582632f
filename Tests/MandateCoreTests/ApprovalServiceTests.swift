import MandateCore
import MandateCrypto
import MandateHTTP
import Synchronization
import Testing

/// The built-in approval service as the proxy's ApprovalGate, and its receipt checks
/// (docs/approvals.md), with an explicit clock and no sockets.
struct ApprovalServiceTests {
    let alice = SigningKey.generate(.edDSA)
    let mallory = SigningKey.generate(.es256)
    let now: Int64 = 1_700_000_000

    var request: ApprovalRequest {
        ApprovalRequest(principal: alice.did, agent: "did:key:zAgent", chain: [alice.did, "did:key:zAgent"], jtis: ["j1"],
                        method: "POST", url: "https://api.example.com/payments",
                        bodySHA256: Base64URL.encode(SHA256.hash(Array(#"{"amount":100}"#.utf8))),
                        bodySummary: #"{"amount":100,"to":"bob"}"#, route: "/payments")
    }

    func service(pings: Pings? = nil) -> ApprovalService {
        let principals = [ProxyConfig.Principal(did: alice.did, name: "Alice")]
        return ApprovalService(settings: .init(requests: .init(expiresIn: 300, interval: 5), issuer: "https://approve.example/"),
                               key: SigningKey.generate(.edDSA),
                               clients: [CIBAClientCredentials(id: "shop", secret: Array("s3cret-s3cret-s3cret-s3cret-s3cret".utf8)),
                                         CIBAClientCredentials(id: "pinger", secret: Array("p".utf8), delivery: .ping,
                                                               notificationEndpoint: "http://127.0.0.1:1/cb")],
                               principals: ConfiguredPrincipals({ principals }),
                               notify: { n in pings?.sent.withLock { $0.append(n) } },
                               schedule: { _, _ in }, clock: { 0 })
    }

    func pending(_ s: ApprovalService) -> (String, Readiness) {
        guard case .pending(let id, let ready) = s.submit(request, id: nil, now: now) else { fatalError("not pending") }
        return (id, ready)
    }

    func subject(_ s: ApprovalService, _ id: String) -> SignedDecision.Subject {
        let d = s.details(id, now: now)!
        return SignedDecision.Subject(id: id, principal: d["principal"]!.string!, bindingMessage: d["binding_message"]!.string!,
                                      request: BoundRequest(json: d["request"]!.object!), openedAt: d["opened_at"]!.integer!,
                                      expiresAt: d["expires_at"]!.integer!)
    }

    func receipt(_ s: ApprovalService, _ id: String, _ v: SignedDecision.Verdict = .approve, key: SigningKey? = nil,
                 edit: (inout SignedDecision.Subject) -> Void = { _ in }, at: Int64? = nil) -> String {
        var subj = subject(s, id)
        edit(&subj)
        return SignedDecision.sign(v, on: subj, key: key ?? alice, kid: nil, issuedAt: at ?? now)
    }

    @Test func opensDecidesBySignedReceiptAndRedeemsOnce() {
        let s = service()
        let (id, ready) = pending(s)
        let fired = Mutex(false)
        ready.whenReady { fired.withLock { $0 = true } }
        #expect(s.details(id, now: now)?["binding_message"]?.string?.contains("POST https://api.example.com/payments amount=100 to=bob") == true)
        let token = receipt(s, id)
        #expect((try? s.decide(id, receipt: token, now: now + 1).get()) == .approve)
        #expect(fired.withLock { $0 })
        guard case .approved(let r) = s.submit(request, id: id, now: now + 2) else { Issue.record("not approved"); return }
        #expect(r.id == id && r.approver == alice.did && r.token == token)
        #expect(r.hash == Base64URL.encode(SHA256.hash(Array(token.utf8))))
        guard case .refused(let d) = s.submit(request, id: id, now: now + 3) else { Issue.record("approved twice"); return }
        #expect(d.status == 403 && d.code == .accessDenied)
    }

    @Test func refusesTheApprovalForAnotherAction() {
        let s = service()
        let (id, _) = pending(s)
        _ = s.decide(id, receipt: receipt(s, id), now: now + 1)
        var other = request
        other.bodySHA256 = Base64URL.encode(SHA256.hash(Array(#"{"amount":100000}"#.utf8)))
        guard case .refused = s.submit(other, id: id, now: now + 2) else { Issue.record("another amount admitted"); return }
        other = request
        other.url = "https://api.example.com/payments?to=mallory"
        guard case .refused = s.submit(other, id: id, now: now + 2) else { Issue.record("another URL admitted"); return }
        // Still there for the request it was given for.
        guard case .approved = s.submit(request, id: id, now: now + 3) else { Issue.record("spent by the refusal"); return }
    }

    @Test func pendingUntilDecidedAndDeniedAfterADeny() {
        let s = service()
        let (id, ready) = pending(s)
        guard case .pending(let again, let r2) = s.submit(request, id: id, now: now + 1) else { Issue.record("not pending"); return }
        #expect(again == id && r2 === ready)
        _ = s.decide(id, receipt: receipt(s, id, .deny), now: now + 2)
        guard case .denied(let d, let approver) = s.submit(request, id: id, now: now + 3) else { Issue.record("not denied"); return }
        #expect(d == id && approver == alice.did)
    }

    @Test func expiryWakesWaitersAndAnswersExpired() {
        let s = service()
        let (id, ready) = pending(s)
        let fired = Mutex(false)
        ready.whenReady { fired.withLock { $0 = true } }
        s.expire(now: now + 299)
        #expect(!fired.withLock { $0 })
        s.expire(now: now + 300)
        #expect(fired.withLock { $0 })
        guard case .expired = s.submit(request, id: id, now: now + 300) else { Issue.record("not expired"); return }
    }

    @Test func unknownIDsAndPrincipalsWithoutAKeyAreRefused() {
        let s = service()
        guard case .refused = s.submit(request, id: "unknown", now: now) else { Issue.record("unknown id admitted"); return }
        var stranger = request
        stranger.principal = "did:web:example.com"
        guard case .refused = s.submit(stranger, id: nil, now: now) else { Issue.record("no key to approve with"); return }
        #expect(s.decide("unknown", receipt: "x.y.z", now: now).failureCode == .invalidGrant)
    }

    @Test func receiptByAnotherKeyIsRefused() {
        let s = service()
        let (id, _) = pending(s)
        let forged = receipt(s, id, key: mallory)
        #expect(s.decide(id, receipt: forged, now: now + 1).failureDescription?.contains("not signed by") == true)
        guard case .pending = s.submit(request, id: id, now: now + 2) else { Issue.record("decided by a forgery"); return }
    }

    @Test func receiptForAnAlteredRequestIsRefused() {
        let s = service()
        let (id, _) = pending(s)
        let edits: [(inout SignedDecision.Subject) -> Void] = [
            { $0.request!.url = "https://api.example.com/payments/other" },
            { $0.request!.bodySHA256 = Base64URL.encode(SHA256.hash([1])) },
            { $0.request!.chain = [self.alice.did, "did:key:zOtherAgent"] },
            { $0.request!.jtis = ["j2"] },
            { $0.request!.method = "PUT" },
            { $0.bindingMessage = "something else" },
            { $0.id = "another-id" },
            { $0.request = nil },
        ]
        for edit in edits {
            #expect((try? s.decide(id, receipt: receipt(s, id, edit: edit), now: now + 1).get()) == nil)
        }
        #expect((try? s.decide(id, receipt: receipt(s, id), now: now + 1).get()) == .approve)
    }

    @Test func expiredOrFutureReceiptIsRefused() {
        let s = service()
        let (id, _) = pending(s)
        let token = receipt(s, id)  // exp = now + 300, the approval's expiry
        let sub = subject(s, id)
        let short = SignedDecision.sign(.approve, on: sub, key: alice, kid: nil, issuedAt: now, ttl: 10)
        #expect(s.decide(id, receipt: short, now: now + 10).failureDescription == "the receipt has expired")
        let future = receipt(s, id, at: now + 120)
        #expect(s.decide(id, receipt: future, now: now + 1).failureDescription == "the receipt is issued in the future")
        #expect(s.decide(id, receipt: token, now: now + 300).failureCode == .expiredToken)
    }

    @Test func receiptHeaderMustBeApprovalJWTWithoutAKey() {
        let s = service()
        let (id, _) = pending(s)
        let sub = subject(s, id)
        var claims: [(String, JSONValue)] = [("iss", .string(sub.principal)), ("sub", .string(id)), ("decision", .string("approve")),
                                             ("binding_message", .string(sub.bindingMessage)), ("request", .object(sub.request!.json)),
                                             ("iat", .integer(now)), ("exp", .integer(now + 60))]
        let wrongType = alice.compactJWS(header: [("typ", .string("JWT"))], claims: JSONObject(members: claims))
        #expect(s.decide(id, receipt: wrongType, now: now).failureDescription?.contains("typ") == true)
        let withKey = alice.compactJWS(header: [("typ", .string("approval+jwt")), ("jwk", .object(alice.publicJWK))],
                                       claims: JSONObject(members: claims))
        #expect(s.decide(id, receipt: withKey, now: now).failureDescription?.contains("jwk") == true)
        claims[2] = ("decision", .string("maybe"))
        let maybe = alice.compactJWS(header: [("typ", .string("approval+jwt"))], claims: JSONObject(members: claims))
        #expect(s.decide(id, receipt: maybe, now: now).failureDescription?.contains("approve or deny") == true)
    }

    @Test func pingClientsAreNotifiedWhenThePersonDecides() {
        let pings = Pings()
        let s = service(pings: pings)
        let client = CIBAClientCredentials(id: "pinger", secret: Array("p".utf8), delivery: .ping, notificationEndpoint: "http://127.0.0.1:1/cb")
        let e = try! s.authorize(client: client, ["scope": "openid", "login_hint": "Alice", "client_notification_token": "tok"], now: now).get()
        let token = SignedDecision.sign(.approve, on: .init(id: e.id, principal: alice.did, bindingMessage: "", request: nil,
                                                            openedAt: now, expiresAt: e.expiresAt), key: alice, kid: nil, issuedAt: now)
        #expect((try? s.decide(e.id, receipt: token, now: now + 1).get()) == .approve)
        #expect(pings.sent.withLock { $0 } == [PingNotification(endpoint: "http://127.0.0.1:1/cb", bearer: "tok", authReqID: e.id)])
        #expect(String(decoding: pings.sent.withLock { $0[0].body }, as: UTF8.self) == "{\"auth_req_id\":\"\(e.id)\"}")
    }

    @Test func clientSecretBasicIsCheckedAndFormParametersMayNotRepeat() {
        let s = service()
        let endpoints = ApprovalEndpoints(s)
        func post(_ auth: String?, _ body: String) -> ApprovalResponse {
            var h = [HTTPHeader("Content-Type", "application/x-www-form-urlencoded")]
            if let auth { h.append(HTTPHeader("Authorization", auth)) }
            return endpoints.respond(method: "POST", path: "/bc-authorize", headers: h, body: Array(body.utf8), now: now)
        }
        let good = "Basic " + base64("shop:s3cret-s3cret-s3cret-s3cret-s3cret")
        #expect(post(good, "scope=openid&login_hint=Alice").status == 200)
        let bad = post("Basic " + base64("shop:wrong"), "scope=openid&login_hint=Alice")
        #expect(bad.status == 401 && bad.fields.contains { $0.0 == "WWW-Authenticate" })
        #expect(post(nil, "scope=openid&login_hint=Alice").status == 401)
        #expect(post(good, "scope=openid&login_hint=Alice&login_hint=Bob").status == 400)
        #expect(post(good, "scope=openid+profile&login_hint=Alice").status == 200)
    }

    func base64(_ s: String) -> String {
        // Standard base64 (RFC 4648 §4) from base64url.
        var t = Base64URL.encode(Array(s.utf8)).replacingOccurrences("-", "+").replacingOccurrences("_", "/")
        while t.utf8.count % 4 != 0 { t += "=" }
        return t
    }
}

final class Pings: Sendable {
    let sent = Mutex<[PingNotification]>([])
}

extension String {
    func replacingOccurrences(_ a: Character, _ b: Character) -> String { String(map { $0 == a ? b : $0 }) }
}

extension Result where Failure == CIBAError {
    var failureCode: CIBAError.Code? { if case .failure(let e) = self { e.code } else { nil } }
    var failureDescription: String? { if case .failure(let e) = self { e.description } else { nil } }
}
