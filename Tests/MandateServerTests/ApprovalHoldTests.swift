import Glibc
import Synchronization
import Testing
import MandateCore
import MandateCrypto
import MandateHTTP
@testable import MandateServer

/// Approvals decided by the test: it answers `decide` from another thread, as a person would.
final class DecidingApprovals: ApprovalGate {
    enum Decision { case approve, deny }
    struct Opened { var request: ApprovalRequest; var ready = Readiness(); var decision: Decision?; var spent = false }
    let state = Mutex<[String: Opened]>([:])
    let seen = Mutex<[ApprovalRequest]>([])

    func submit(_ request: ApprovalRequest, id: String?, now: Int64) -> ApprovalState {
        seen.withLock { $0.append(request) }
        return state.withLock { s in
            guard let id else {
                let id = "approval-\(s.count)-aaaaaaaaaaaaaaaaaaaa"
                s[id] = Opened(request: request)
                return .pending(id: id, ready: s[id]!.ready)
            }
            guard var o = s[id], o.request.sameAction(request), !o.spent else { return .refused(Denial(.accessDenied, "unknown approval")) }
            switch o.decision {
            case nil: return .pending(id: id, ready: o.ready)
            case .deny?: return .denied(id: id, approver: request.principal)
            case .approve?:
                o.spent = true
                s[id] = o
                return .approved(ApprovalReceipt(id: id, approver: request.principal, token: "receipt.\(id)", hash: "hash-\(id)"))
            }
        }
    }

    func pending(now: Int64) -> Int { state.withLock { $0.values.count { $0.decision == nil } } }

    func decide(_ d: Decision) {
        let ready = state.withLock { s -> Readiness? in
            guard let id = s.keys.first(where: { s[$0]!.decision == nil }) else { return nil }
            s[id]!.decision = d
            return s[id]!.ready
        }
        ready?.fire()
    }

    func waitForOpen() {
        for _ in 0 ..< 500 where state.withLock({ $0.isEmpty }) { usleep(10_000) }
    }
}

final class Verdict: Sendable { let denial = Mutex<Denial?>(nil) }

/// `/pay…` needs approval; everything else is forwarded.
struct ApprovingGate: RequestGate {
    let approvals: DecidingApprovals
    let wait: Double
    var maxBody = 1 << 20
    /// The registry's verdict when a held request wakes (nil: still honoured).
    var revoked: Verdict? = nil

    func admit(_ head: HTTPRequestHead, peer: Peer, requestID: String, now: Int64) -> Admission {
        let facts = AuditFacts(principal: "did:key:alice", agent: "did:key:agent", chain: ["did:key:alice", "did:key:agent"], route: "/pay")
        let plan = ForwardPlan(target: head.target, headers: head.headers.filter { $0.name.lowercased() != "connection" }, facts: facts)
        guard head.path.hasPrefix("/pay") else { return .forward(plan) }
        let request = ApprovalRequest(principal: "did:key:alice", agent: "did:key:agent", chain: facts.chain, jtis: ["j1"],
                                      method: head.method, url: "http://proxy" + head.target, route: "/pay")
        let revoked = self.revoked
        return .hold(ApprovalHold(plan: plan, request: request, id: head.value("Approval-Id").map { String($0) }, wait: wait,
                                  maxBody: maxBody, gate: approvals, recheck: { _ in revoked?.denial.withLock { $0 } }))
    }
}

@Suite(.serialized) struct ApprovalHoldTests {
    @Test func forwardsAHeldRequestTheMomentItIsApproved() throws {
        let approvals = DecidingApprovals()
        let f = try Fixture(gate: ApprovingGate(approvals: approvals, wait: 10))
        let c = Client(port: f.port)
        c.send("POST /pay HTTP/1.1\r\nHost: h\r\nContent-Length: 14\r\nConnection: close\r\n\r\n{\"amount\":250}")
        approvals.waitForOpen()
        approvals.decide(.approve)
        let response = c.readToEnd()
        let log = f.shutdown()
        #expect(response.hasPrefix("HTTP/1.1 200 OK"))
        #expect(response.contains("\"body_bytes\":14"))
        // The upstream sees who approved it.
        #expect(response.contains("\"mandate-approval\":\"receipt.approval-0-"))
        // The approval was bound to the body it forwarded.
        let asked = approvals.seen.withLock { $0.first }
        #expect(asked?.bodySHA256 == Base64URL.encode(SHA256.hash(Array("{\"amount\":250}".utf8))))
        #expect(asked?.bodySummary == "{\"amount\":250}")
        #expect(log.contains("\"approval\":\"approval-0-"))
    }

    @Test func answersApprovalPendingWithItsIdAfterTheWait() throws {
        let approvals = DecidingApprovals()
        let f = try Fixture(gate: ApprovingGate(approvals: approvals, wait: 0.3))
        let c = Client(port: f.port)
        c.send("POST /pay HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}")
        let pending = c.read(until: "request_id")
        #expect(pending.hasPrefix("HTTP/1.1 403 "))
        #expect(pending.contains("Approval-Id: approval-0-"))
        #expect(pending.contains("WWW-Authenticate: DPoP error=\"approval_pending\""))
        #expect(pending.contains("\"error\":\"approval_pending\""))
        // Approved meanwhile: the retry carrying the id is forwarded, once.
        approvals.decide(.approve)
        c.send("POST /pay HTTP/1.1\r\nHost: h\r\nApproval-Id: approval-0-aaaaaaaaaaaaaaaaaaaa\r\nContent-Length: 2\r\n\r\n{}")
        let forwarded = c.read(until: "\"body_bytes\"")
        #expect(forwarded.hasPrefix("HTTP/1.1 200 OK"))
        c.send("POST /pay HTTP/1.1\r\nHost: h\r\nApproval-Id: approval-0-aaaaaaaaaaaaaaaaaaaa\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        let replayed = c.readToEnd()
        _ = f.shutdown()
        #expect(replayed.hasPrefix("HTTP/1.1 403 "))
    }

    @Test func refusesADeniedRequest() throws {
        let approvals = DecidingApprovals()
        let f = try Fixture(gate: ApprovingGate(approvals: approvals, wait: 10))
        let c = Client(port: f.port)
        c.send("POST /pay HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
        approvals.waitForOpen()
        approvals.decide(.deny)
        let response = c.readToEnd()
        let log = f.shutdown()
        #expect(response.hasPrefix("HTTP/1.1 403 "))
        #expect(response.contains("\"error\":\"approval_denied\""))
        #expect(response.contains("Approval-Id: approval-0-"))
        #expect(log.contains("\"reason\":\"approval_denied\""))
    }

    @Test func refusesAHeldRequestWhoseAgentWasRevokedBeforeItWasApproved() throws {
        let approvals = DecidingApprovals()
        let revoked = Verdict()
        var gate = ApprovingGate(approvals: approvals, wait: 10)
        gate.revoked = revoked
        let f = try Fixture(gate: gate)
        let c = Client(port: f.port)
        c.send("POST /pay HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        approvals.waitForOpen()
        revoked.denial.withLock { $0 = Denial(.invalidToken, "agent did:key:agent has been revoked") }
        approvals.decide(.approve)
        let response = c.readToEnd()
        let log = f.shutdown()
        #expect(response.hasPrefix("HTTP/1.1 401 "))
        #expect(response.contains("\"error\":\"invalid_token\""))
        #expect(!response.contains("mandate-approval"))
        #expect(log.contains("\"reason\":\"invalid_token\""))
        #expect(log.contains("\"approval\":\"approval-0-"))
    }

    @Test func keepsServingOtherRequestsWhileOneIsHeld() throws {
        let approvals = DecidingApprovals()
        let f = try Fixture(gate: ApprovingGate(approvals: approvals, wait: 10))
        let held = Client(port: f.port)
        held.send("POST /pay HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        approvals.waitForOpen()
        let other = Client(port: f.port)
        other.send("GET /free HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        let free = other.readToEnd()
        approvals.decide(.approve)
        let paid = held.readToEnd()
        _ = f.shutdown()
        #expect(free.hasPrefix("HTTP/1.1 200 OK"))
        #expect(paid.hasPrefix("HTTP/1.1 200 OK"))
    }
}

@Suite(.serialized) struct ApprovalHoldLimitTests {
    /// Held bodies wait in memory for a person: a body beyond the hold's limit is refused, and
    /// nobody is asked.
    @Test func refusesABodyTooLargeToHoldWithoutAskingAnyone() throws {
        let approvals = DecidingApprovals()
        let f = try Fixture(gate: ApprovingGate(approvals: approvals, wait: 10, maxBody: 100))
        let big = Client(port: f.port)
        big.send("POST /pay HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\nConnection: close\r\n\r\n")
        let declared = big.readToEnd()
        let chunked = Client(port: f.port)
        chunked.send("POST /pay HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n" + String(repeating: "a", count: 101) + "\r\n0\r\n\r\n")
        let streamed = chunked.readToEnd()
        _ = f.shutdown()
        #expect(declared.hasPrefix("HTTP/1.1 413 "))
        #expect(streamed.hasPrefix("HTTP/1.1 413 "))
        #expect(approvals.seen.withLock { $0.isEmpty })
    }
}
