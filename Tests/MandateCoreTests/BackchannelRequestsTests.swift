import MandateCore
import MandateCrypto
import Testing

/// CIBA Core 1.0 §7.3 and §11, on the pure state machine with an explicit clock.
struct BackchannelRequestsTests {
    let shop = BackchannelClient.ciba("shop")
    let receipt = ApprovalReceipt(id: "x", approver: "did:key:zAlice", token: "t", hash: "h")

    func requests(capacity: Int = 100) -> BackchannelRequests {
        BackchannelRequests(settings: .init(expiresIn: 300, interval: 5, capacity: capacity, retention: 600))
    }

    func opened(_ r: inout BackchannelRequests, at now: Int64 = 1000, expiry: Int64? = nil) -> BackchannelRequests.Entry {
        try! r.open(client: shop, principal: "did:key:zAlice", bindingMessage: "pay", requestedExpiry: expiry, now: now).get()
    }

    func code(_ o: BackchannelRequests.TokenOutcome) -> CIBAError.Code? {
        if case .refused(let e) = o { return e.code }
        return nil
    }

    @Test func authReqIDsCarryAtLeast128RandomBitsAndAreUnique() {
        let ids = (0..<1000).map { _ in BackchannelRequests.newID() }
        #expect(Set(ids).count == 1000)
        #expect(ids.allSatisfy { Base64URL.decode($0.utf8)?.count == 32 })
    }

    @Test func authReqIDsNeverBeginWithADashTheCLIWouldTakeForAnOption() {
        // Without the rule, 1 in 64 would: (63/64)^5000 ≈ 1e-34 that none of these does.
        #expect((0..<5000).allSatisfy { _ in !BackchannelRequests.newID().hasPrefix("-") })
    }

    @Test func pendingAnswersAuthorizationPending() {
        var r = requests()
        let e = opened(&r)
        #expect(code(r.poll(e.id, client: shop, now: 1000)) == .authorizationPending)
        #expect(code(r.poll(e.id, client: shop, now: 1005)) == .authorizationPending)
    }

    @Test func pollingSoonerThanTheIntervalAnswersSlowDownAndGrowsItBy5Seconds() {
        var r = requests()
        let e = opened(&r)
        _ = r.poll(e.id, client: shop, now: 1000)
        #expect(code(r.poll(e.id, client: shop, now: 1004)) == .slowDown)
        #expect(r.entry(e.id)?.interval == 10)
        #expect(code(r.poll(e.id, client: shop, now: 1013)) == .slowDown)  // 9 s < 10 s
        #expect(r.entry(e.id)?.interval == 15)
        #expect(code(r.poll(e.id, client: shop, now: 1028)) == .authorizationPending)
        #expect(r.entry(e.id)?.interval == 15)
    }

    @Test func pastItsExpiryAnswersExpiredToken() {
        var r = requests()
        let e = opened(&r, expiry: 60)
        #expect(e.expiresAt == 1060)
        #expect(code(r.poll(e.id, client: shop, now: 1060)) == .expiredToken)
        if case .failure(let err) = r.decide(e.id, approve: true, receipt: receipt, now: 1061) {
            #expect(err.code == .expiredToken)
        } else { Issue.record("decided after expiry") }
    }

    @Test func requestedExpiryIsCappedByTheConfiguredExpiry() {
        var r = requests()
        #expect(opened(&r, expiry: 10_000).expiresAt == 1300)
        #expect(opened(&r).expiresAt == 1300)
    }

    @Test func deniedAnswersAccessDeniedWith400() {
        var r = requests()
        let e = opened(&r)
        _ = r.decide(e.id, approve: false, receipt: receipt, now: 1001)
        guard case .refused(let err) = r.poll(e.id, client: shop, now: 1002) else { Issue.record("issued"); return }
        #expect(err.code == .accessDenied && err.status == 400)
    }

    @Test func approvedIssuesOnceThenTheIDIsSpent() {
        var r = requests()
        let e = opened(&r)
        _ = r.decide(e.id, approve: true, receipt: receipt, now: 1001)
        guard case .issue(let spent) = r.poll(e.id, client: shop, now: 1002) else { Issue.record("not issued"); return }
        #expect(spent.receipt == receipt && spent.decidedAt == 1001)
        #expect(code(r.poll(e.id, client: shop, now: 1010)) == .invalidGrant)
    }

    @Test func anotherClientsIDIsInvalidGrantAndDoesNotSpendIt() {
        var r = requests()
        let e = opened(&r)
        _ = r.decide(e.id, approve: true, receipt: receipt, now: 1001)
        #expect(code(r.poll(e.id, client: .ciba("bank"), now: 1002)) == .invalidGrant)
        #expect(code(r.poll(e.id, client: .proxy, now: 1002)) == .invalidGrant)
        guard case .issue = r.poll(e.id, client: shop, now: 1003) else { Issue.record("spent by another client"); return }
    }

    @Test func unknownIDIsInvalidGrant() {
        var r = requests()
        #expect(code(r.poll("nope", client: shop, now: 1000)) == .invalidGrant)
    }

    @Test func aDecisionIsRecordedOnce() {
        var r = requests()
        let e = opened(&r)
        #expect((try? r.decide(e.id, approve: false, receipt: receipt, now: 1001).get()) != nil)
        #expect((try? r.decide(e.id, approve: true, receipt: receipt, now: 1002).get()) == nil)
        #expect(r.entry(e.id)?.decision == .denied)
    }

    @Test func memoryIsBoundedAndExpiredRequestsAreForgotten() {
        var r = requests(capacity: 2)
        let a = opened(&r, at: 1000, expiry: 10)
        _ = opened(&r, at: 1000)
        guard case .failure(let full) = r.open(client: shop, principal: "p", bindingMessage: "", now: 1001) else {
            Issue.record("over capacity"); return
        }
        #expect(full.code == .temporarilyUnavailable && full.status == 503)
        // Once one has expired, its room is reused.
        #expect((try? r.open(client: shop, principal: "p", bindingMessage: "", now: 1011).get()) != nil)
        #expect(r.entry(a.id) == nil)
        // Past expiry + retention, every request is dropped.
        r.sweep(now: 1011 + 300 + 600)
        #expect(r.entries.isEmpty)
    }

    @Test func onePrincipalsPendingRequestsAreBoundedAndOthersStillOpen() {
        var r = BackchannelRequests(settings: .init(expiresIn: 300, interval: 5, capacity: 1000, retention: 600, perPrincipal: 3))
        let agent = BackchannelClient.proxy
        var first: BackchannelRequests.Entry?
        for _ in 0..<3 {
            let e = try! r.open(client: agent, principal: "did:key:zAlice", bindingMessage: "pay", now: 1000).get()
            first = first ?? e
        }
        // A fourth for the same person is refused: the flood stays within their share.
        guard case .failure(let e) = r.open(client: shop, principal: "did:key:zAlice", bindingMessage: "pay", now: 1000) else {
            Issue.record("a fourth pending request was opened"); return
        }
        #expect(e.code == .temporarilyUnavailable && e.status == 503)
        // Another principal is still asked.
        #expect((try? r.open(client: agent, principal: "did:key:zBob", bindingMessage: "pay", now: 1000).get()) != nil)
        // A decided or expired request frees its place.
        _ = r.decide(first!.id, approve: false, receipt: receipt, now: 1001)
        #expect((try? r.open(client: agent, principal: "did:key:zAlice", bindingMessage: "pay", now: 1001).get()) != nil)
        #expect((try? r.open(client: agent, principal: "did:key:zAlice", bindingMessage: "pay", now: 1400).get()) != nil)
    }

    @Test func expiredListsOnlyPendingRequestsPastTheirExpiry() {
        var r = requests()
        let a = opened(&r, expiry: 10)
        let b = opened(&r, expiry: 10)
        _ = r.decide(b.id, approve: false, receipt: receipt, now: 1001)
        #expect(r.expired(at: 1009).isEmpty)
        #expect(r.expired(at: 1010) == [a.id])
    }
}
