import Glibc
import Dispatch
import CCurl
import CMandateShim
import MandateCore
import MandateCrypto
import MandateHTTP

/// One client connection: socket I/O around the parser, the lifecycle and at most one exchange.
/// Owned by its loop's thread.
final class ClientConnection {
    unowned let loop: EventLoop
    let fd: Int32
    let slot: Int
    let tag: UInt64
    private(set) var peer: Peer
    /// The TLS session, when the listener terminates TLS (non-blocking SSL_read/SSL_write on fd).
    private let tls: OpaquePointer?
    private var handshaking: Bool
    private let verifyClient: ProxyConfig.TLS.ClientVerification
    /// Why requests on this connection are refused whatever they carry (a client certificate
    /// that did not verify, or none where one is required): nginx answers these with 400 too.
    private var transportRefusal: String?
    private var parser: HTTPRequestParser
    private(set) var lifecycle: ConnectionLifecycle
    /// Input not yet parsed (pipelined requests, or body held back by upstream backpressure).
    private var inbox: [UInt8] = []
    private var outbox: [UInt8] = []
    private var outOffset = 0
    private(set) var interest: UInt32
    private(set) var exchange: UpstreamExchange?
    private var closed = false
    /// Set once the socket failed; curl callbacks check it and abort the transfer.
    private(set) var broken = false
    private var closeAfterFlush = false
    /// Request body queued for the upstream passed the high-water mark.
    private var inputHeld = false
    private var clientMinorVersion = 1
    private var record: Record?

    /// What the access log needs about the request in flight.
    struct Record {
        var requestID: String
        var method: String
        var path: String
        var start: Double
        var forwarded: Bool
        var reason: String?
        var facts: AuditFacts
        var status = 0
    }

    init(loop: EventLoop, fd: Int32, slot: Int, tag: UInt64, address: String,
         tls: (OpaquePointer, ProxyConfig.TLS.ClientVerification)?, now: Double) {
        self.loop = loop; self.fd = fd; self.slot = slot; self.tag = tag
        peer = Peer(address: address, tls: tls != nil)
        self.tls = tls?.0
        handshaking = tls != nil
        verifyClient = tls?.1 ?? .off
        parser = HTTPRequestParser(limits: loop.settings.limits)
        lifecycle = ConnectionLifecycle(now: now, headerTimeout: loop.settings.headerTimeout,
                                        idleTimeout: loop.settings.idleTimeout)
        // The handshake and the first head share header_timeout (as nginx's client_header_timeout).
        if handshaking { lifecycle.bytesReceived(now: now) }
        interest = (Epoll.input | Epoll.readHangup)
    }

    var hasPendingOutput: Bool { outOffset < outbox.count }
    var pendingOutput: Int { outbox.count - outOffset }

    // MARK: Events

    func handle(events: UInt32, now: Double) {
        if events & Epoll.error != 0 { close(now: now); return }
        if handshaking {
            continueHandshake(now: now)
            if handshaking || closed { return }
        }
        if events & Epoll.output != 0 {
            flush(now: now)
            if closed { return }
            resumeUpstreamIfDrained()
            if closed { return }
            if !inbox.isEmpty && pendingOutput < loop.settings.outputHighWater / 2 {
                resumeInput(now: now)
                if closed { return }
            }
        }
        if events & Epoll.input != 0 {
            if wantsInput {
                readAvailable(now: now)
                if closed { return }
            } else if !inputMuted {
                inputMuted = true  // input while none is wanted (pipelining): stop polling for it
                updateInterest()
            }
        }
        // The peer shut down: once nothing more is wanted from it, it is gone (a half-close while
        // waiting for a response is treated as an abort).
        if events & (Epoll.readHangup | Epoll.hangup) != 0 && !wantsInput {
            close(now: now)
        }
    }

    private var wantsInput: Bool {
        lifecycle.phase == .closing || (lifecycle.acceptsInput && !inputHeld && inbox.isEmpty && !outputBacklogged)
    }

    /// A client that pipelines requests without reading the answers is not read from until it
    /// does: otherwise refusals would pile up in memory without bound.
    private var outputBacklogged: Bool { pendingOutput >= loop.settings.outputHighWater }

    private func readAvailable(now: Double) {
        var rounds = 0
        while !closed && wantsInput && rounds < 4 {
            rounds += 1
            let n = receive()
            if n > 0 {
                if lifecycle.phase == .closing { continue }  // lingering close: discard
                lifecycle.bytesReceived(now: now)
                let input = UnsafeRawBufferPointer(rebasing: loop.readBuffer[0 ..< n])
                let used = drive(input, now: now)
                if !closed && used < n { inbox.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[used...])) }
                // A short plain read emptied the socket; TLS returns a record at a time.
                if n < loop.readBuffer.count && tls == nil { break }
            } else if n == Self.wouldBlock {
                break
            } else {
                // The client's close_notify is answered with ours (RFC 5246 §7.2.1, RFC 8446 §6.1).
                if n == 0, let tls { mandate_tls_close_notify(tls) }
                close(now: now); return
            }
        }
        updateInterest()
    }

    /// Parses held-back input once the connection may take it again.
    func resumeInput(now: Double) {
        guard !closed else { return }
        if !inbox.isEmpty && lifecycle.acceptsInput && !inputHeld {
            if lifecycle.phase == .idle { lifecycle.bytesReceived(now: now) }
            var pending: [UInt8] = []
            swap(&pending, &inbox)
            let used = pending.withUnsafeBytes { drive($0, now: now) }
            if !closed && used < pending.count { inbox.append(contentsOf: pending[used...]) }
            pending.removeAll(keepingCapacity: true)
            if inbox.isEmpty { swap(&pending, &inbox) }  // keep the capacity
        }
        if !closed { updateInterest() }
    }

    /// Feeds input to the parser while the lifecycle accepts it; returns the bytes consumed.
    private func drive(_ input: UnsafeRawBufferPointer, now: Double) -> Int {
        var offset = 0
        while !closed && lifecycle.acceptsInput && !inputHeld && !outputBacklogged {
            let start = offset
            let (event, used) = parser.parse(UnsafeRawBufferPointer(rebasing: input[start...]))
            offset += used
            guard let event else { break }
            switch event {
            case .head(let head):
                onHead(head, now: now)
            case .body(let o, let c):
                onBody(UnsafeRawBufferPointer(rebasing: input[(start + o) ..< (start + o + c)]))
                // A body that just reached the high-water mark may be complete: its end takes no
                // input, so it is not held back (else the request would stay unfinished).
                if inputHeld, case (.end?, _) = parser.parse(UnsafeRawBufferPointer(start: nil, count: 0)) {
                    onRequestEnd(now: now)
                }
            case .end:
                onRequestEnd(now: now)
            case .error(let e):
                onParseError(e, now: now)
                return input.count
            }
        }
        return offset
    }

    // MARK: Requests

    private func onHead(_ head: HTTPRequestHead, now: Double) {
        clientMinorVersion = head.minorVersion
        lifecycle.headReceived(keepAlive: head.keepAlive, now: now)
        decide(head, requestID: loop.requestIDs.next(), start: now, now: now)
    }

    /// A request the gate could not decide yet (a DID being fetched): its head, asked again.
    private var waiting: (head: HTTPRequestHead, requestID: String, start: Double)?
    private var waits = 0
    /// Each wait ends with one finished fetch, and the walk stops at the first DID it lacks: a
    /// chain of max_chain_length (≤ 16) links needs up to two per link (its sub; its issuer
    /// again, for an unknown kid) and one for the root's issuer. Beyond that, 503.
    static let maxWaits = 2 * 16 + 1

    /// A request held for its principal's approval (`effect approve`): its body, read whole
    /// first so the approval can be bound to its hash, and the approval once opened.
    private struct Held {
        var hold: ApprovalHold
        var head: HTTPRequestHead
        var requestID: String
        var body: [UInt8] = []
        /// Monotonic time at which the agent gets 403 approval_pending.
        var deadline: Double?
        var submitted = false
    }
    private var held: Held?

    /// The loop calls this once the gate's wait is over: the same head is admitted again (or
    /// a held request asks again whether it was approved).
    func readmit(now: Double) {
        if !closed, held?.submitted == true { askApproval(now: now); return }
        guard !closed, let w = waiting else { return }
        waiting = nil
        inputHeld = false
        decide(w.head, requestID: w.requestID, start: w.start, now: now)
        if closed { return }
        if !inbox.isEmpty { loop.resumable.append(self) }  // the body, held back meanwhile
        updateInterest()
    }

    private func decide(_ head: HTTPRequestHead, requestID id: String, start: Double, now: Double) {
        var admission: Admission
        if let problem = transportRefusal {
            lifecycle.mustClose()
            admission = .refuse(Denial(.invalidRequest, problem), AuditFacts())
        } else {
            admission = loop.gate.admit(head, peer: peer, requestID: id, now: unixMillisNow() / 1000)
        }
        if case .wait(let readiness) = admission {
            waits += 1
            if waits <= Self.maxWaits {
                // Hold the request, and read nothing more (its body waits in the socket).
                waiting = (head, id, start)
                inputHeld = true
                record = Record(requestID: id, method: head.method, path: String(head.path), start: start, forwarded: false,
                                reason: nil, facts: AuditFacts())
                let loop = self.loop, tag = self.tag
                readiness.whenReady { loop.post(tag) }
                return
            }
            var d = Denial(.temporarilyUnavailable, "the chain's DIDs could not be resolved in time; retry shortly")
            d.retryAfter = 1
            admission = .refuse(d, AuditFacts())
        }
        waits = 0
        let hasBody: Bool
        switch head.framing {
        case .none, .length(0): hasBody = false
        default: hasBody = true
        }
        switch admission {
        case .refuse(let denial, let facts):
            record = Record(requestID: id, method: head.method, path: String(head.path), start: start, forwarded: false,
                            reason: denial.code.rawValue, facts: facts)
            keepOrDiscardBody(head)
            respond(denial, requestID: id, isHEAD: head.method == "HEAD", now: now)
        case .answer(let answer):
            record = Record(requestID: id, method: head.method, path: String(head.path), start: start, forwarded: false,
                            reason: answer.denial?.code.rawValue, facts: AuditFacts())
            keepOrDiscardBody(head)
            writeLocal(answer.status, answer.headers, answer.denial?.jsonBody(requestID: id) ?? answer.body,
                       requestID: id, isHEAD: head.method == "HEAD", now: now)
        case .forward(let plan):
            record = Record(requestID: id, method: head.method, path: String(head.path), start: start, forwarded: true,
                            reason: nil, facts: plan.facts)
            // RFC 9110 §10.1.1: the client waits for this before sending the body.
            if hasBody && expectsContinue(head) {
                outbox.append(contentsOf: "HTTP/1.1 100 Continue\r\n\r\n".utf8)
                flush(now: now)
            }
            if let ex = UpstreamExchange(connection: self, head: head, plan: plan, requestID: id, settings: loop.settings),
               loop.attach(ex) {
                exchange = ex
                // A HEAD's body is never forwarded, so its answer may come first: the rest is
                // read and dropped, and the connection kept.
                if hasBody && ex.isHEAD { lifecycle.discardBody() }
            } else {
                lifecycle.mustClose()
                respond(Denial(.badGateway, "upstream unavailable"), requestID: id, isHEAD: false, now: now)
            }
        case .hold(let hold):
            record = Record(requestID: id, method: head.method, path: String(head.path), start: start, forwarded: false,
                            reason: nil, facts: hold.plan.facts)
            if case .length(let n) = head.framing, n > hold.maxBody {
                record?.reason = Denial.Code.payloadTooLarge.rawValue
                keepOrDiscardBody(head)
                respond(Denial(.payloadTooLarge, "a request that needs approval may carry at most \(ApprovalHold.maxHeldBody >> 10) KB"),
                        requestID: id, isHEAD: head.method == "HEAD", now: now)
                return
            }
            held = Held(hold: hold, head: head, requestID: id)
            if hasBody && expectsContinue(head) {
                outbox.append(contentsOf: "HTTP/1.1 100 Continue\r\n\r\n".utf8)
                flush(now: now)
            }
        case .wait:
            break  // handled above
        }
    }

    /// The held request's body is complete: ask (or ask again) whether it is approved. Pending,
    /// it waits for the decision or the deadline, whichever comes first.
    private func askApproval(now: Double) {
        guard var h = held else { return }
        if !h.submitted {
            h.submitted = true
            h.hold.request.bodySHA256 = Base64URL.encode(SHA256.hash(h.body))
            h.hold.request.bodySummary = Self.summary(h.body)
        }
        var facts = h.hold.plan.facts
        let unixNow = unixMillisNow() / 1000
        let state = h.hold.gate.submit(h.hold.request, id: h.hold.id, now: unixNow)
        // Judged again on waking: revoked or suspended meanwhile, it is refused, approved or not
        // (an approval this answer spent stays spent).
        if let d = h.hold.recheck(unixNow) {
            facts.approval = state.approvalID ?? h.hold.id
            refuseHeld(d, facts, now: now)
            return
        }
        switch state {
        case .pending(let id, let ready):
            h.hold.id = id
            let deadline = h.deadline ?? now + h.hold.wait
            h.deadline = deadline
            facts.approval = id
            if now < deadline {
                held = h
                record?.facts = facts
                let loop = self.loop, tag = self.tag
                ready.whenReady { loop.post(tag) }
                DispatchQueue.global().asyncAfter(deadline: .now() + (deadline - now)) { loop.post(tag) }
                return
            }
            var d = Denial(.approvalPending, "waiting for the principal's approval; retry with this Approval-Id and a fresh proof")
            d.approvalID = id
            d.retryAfter = 5
            refuseHeld(d, facts, now: now)
        case .approved(let receipt):
            facts.approval = receipt.id; facts.approver = receipt.approver; facts.receipt = receipt.hash
            var plan = h.hold.plan
            plan.facts = facts
            // The upstream can check for itself who approved exactly this request.
            plan.headers.append(HTTPHeader("Mandate-Approval", receipt.token))
            held = nil
            record?.facts = facts
            record?.forwarded = true
            if let ex = UpstreamExchange(connection: self, head: h.head, plan: plan, requestID: h.requestID, settings: loop.settings),
               loop.attach(ex) {
                exchange = ex
                h.body.withUnsafeBytes { ex.appendBody($0) }
                ex.endBody()
            } else {
                record?.forwarded = false
                lifecycle.mustClose()
                respond(Denial(.badGateway, "upstream unavailable"), requestID: h.requestID, isHEAD: false, now: now)
            }
        case .denied(let id, let approver):
            facts.approval = id; facts.approver = approver
            var d = Denial(.approvalDenied, "the principal denied this request")
            d.approvalID = id
            refuseHeld(d, facts, now: now)
        case .expired(let id):
            facts.approval = id
            var d = Denial(.approvalExpired, "the approval expired before the principal answered")
            d.approvalID = id
            refuseHeld(d, facts, now: now)
        case .refused(let d):
            refuseHeld(d, facts, now: now)
        }
    }

    private func refuseHeld(_ d: Denial, _ facts: AuditFacts, now: Double) {
        guard let h = held else { return }
        held = nil
        record?.facts = facts
        record?.reason = d.code.rawValue
        respond(d, requestID: h.requestID, isHEAD: h.head.method == "HEAD", now: now)
        updateInterest()
    }

    /// The start of a body, printable, for the person deciding.
    static func summary(_ body: [UInt8]) -> String {
        var s = ""
        for b in body.prefix(256) { s.unicodeScalars.append(b >= 0x20 && b < 0x7f ? UnicodeScalar(b) : ".") }
        // The person must see that there is more than they are shown (an amount past byte 256).
        if body.count > 256 { s += " ... (the first 256 of \(body.count) bytes)" }
        return s
    }

    /// A small (or empty) body of a request answered here is read and dropped so the connection
    /// can be reused; a client waiting for 100 Continue will not send its body at all (RFC 9110 §10.1.1).
    private func keepOrDiscardBody(_ head: HTTPRequestHead) {
        switch head.framing {
        case .none: lifecycle.discardBody()
        case .length(let n) where n <= loop.settings.maxDrain && head.keepAlive && !expectsContinue(head):
            lifecycle.discardBody()
        default: lifecycle.mustClose()
        }
    }

    /// RFC 9110 §10.1.1; never to an HTTP/1.0 client (§15.2: no 1xx for 1.0).
    private func expectsContinue(_ head: HTTPRequestHead) -> Bool {
        guard head.minorVersion >= 1, let expect = head.value("Expect") else { return false }
        return expect.utf8.elementsEqual("100-continue".utf8, by: asciiCaseInsensitiveEqual)
    }

    private func onBody(_ bytes: UnsafeRawBufferPointer) {
        if held != nil {
            guard held!.body.count + bytes.count <= held!.hold.maxBody else {
                let id = held!.requestID, isHEAD = held!.head.method == "HEAD"
                held = nil
                record?.reason = Denial.Code.payloadTooLarge.rawValue
                lifecycle.mustClose()
                respond(Denial(.payloadTooLarge, "a request that needs approval may carry at most \(ApprovalHold.maxHeldBody >> 10) KB"),
                        requestID: id, isHEAD: isHEAD, now: monotonicNow())
                return
            }
            held!.body.append(contentsOf: bytes)
            return
        }
        // Refused, or a HEAD (curl never sends its body): read and dropped. Or upstream already done.
        guard let ex = exchange, !lifecycle.discarding else { return }
        ex.appendBody(bytes)
        if ex.pendingBody >= loop.settings.inputHighWater { inputHeld = true }
    }

    /// Called by the exchange when curl has taken request-body bytes (inside a curl callback).
    func bodyDrained(pending: Int) {
        if inputHeld && pending < loop.settings.inputHighWater / 2 {
            inputHeld = false
            loop.resumable.append(self)
        }
    }

    private func onRequestEnd(now: Double) {
        exchange?.endBody()
        apply(lifecycle.requestEnded(now: now), now: now)
        if held != nil { askApproval(now: now) }
    }

    private func onParseError(_ e: HTTPParseError, now: Double) {
        let denial: Denial
        switch e.status {
        case 413: denial = Denial(.payloadTooLarge, e.reason)
        case 414: denial = Denial(.uriTooLong, e.reason)
        case 431: denial = Denial(.headersTooLarge, e.reason)
        case 501: denial = Denial(.notImplemented, e.reason)
        case 505: denial = Denial(.versionNotSupported, e.reason)
        default: denial = Denial(.invalidRequest, e.reason, status: e.status)
        }
        if let ex = exchange {
            loop.detach(ex)
            exchange = nil
            if ex.responseStarted { close(now: now); return }
        }
        let id = record?.requestID ?? loop.requestIDs.next()
        if record == nil || record!.status != 0 {
            record = Record(requestID: id, method: "-", path: "-", start: now, forwarded: false, reason: nil, facts: AuditFacts())
        }
        record!.reason = denial.code.rawValue
        record!.forwarded = false
        refuseAndClose(denial, requestID: id, now: now)
    }

    /// Header timeout (slowloris): 408, then close.
    func headerTimedOut(now: Double) {
        if handshaking { close(now: now); return }  // no HTTP to answer in before the handshake
        let id = loop.requestIDs.next()
        record = Record(requestID: id, method: "-", path: "-", start: now, forwarded: false,
                        reason: Denial.Code.requestTimeout.rawValue, facts: AuditFacts())
        refuseAndClose(Denial(.requestTimeout, "request head not received in time"), requestID: id, now: now)
    }

    private func refuseAndClose(_ denial: Denial, requestID: String, now: Double) {
        lifecycle.mustClose()
        if lifecycle.phase != .exchange { lifecycle.headReceived(keepAlive: false, now: now) }
        respond(denial, requestID: requestID, isHEAD: false, now: now)
        closeAfterFlush = true
        flush(now: now)
    }

    /// A local answer: the Denial's status, JSON body and challenges.
    private func respond(_ denial: Denial, requestID: String, isHEAD: Bool, now: Double) {
        var fields = [HTTPHeader("Content-Type", "application/json")]
        for challenge in denial.challenges { fields.append(HTTPHeader("WWW-Authenticate", challenge)) }
        if let seconds = denial.retryAfter { fields.append(HTTPHeader("Retry-After", String(seconds))) }
        if let id = denial.approvalID { fields.append(HTTPHeader("Approval-Id", id)) }
        writeLocal(denial.status, fields, denial.jsonBody(requestID: requestID), requestID: requestID, isHEAD: isHEAD, now: now)
    }

    private func writeLocal(_ status: Int, _ fields: [HTTPHeader], _ body: [UInt8], requestID: String, isHEAD: Bool,
                            now: Double) {
        HTTPResponseWriter.appendStatusLine(status, to: &outbox)
        for f in fields { HTTPResponseWriter.appendField(f.name, f.value, to: &outbox) }
        HTTPResponseWriter.appendField("Content-Length", body.count, to: &outbox)
        HTTPResponseWriter.appendField("Mandate-Request-Id", requestID, to: &outbox)
        if !lifecycle.keepAlive {
            HTTPResponseWriter.appendField("Connection", "close", to: &outbox)
        } else if clientMinorVersion == 0 {
            HTTPResponseWriter.appendField("Connection", "keep-alive", to: &outbox)
        }
        outbox.append(0x0D); outbox.append(0x0A)
        if !isHEAD { outbox.append(contentsOf: body) }
        record?.status = status
        responseEnded(now: now)
    }

    private func responseEnded(now: Double) {
        writeLog()
        apply(lifecycle.responseEnded(now: now), now: now)
        flush(now: now)
    }

    private func apply(_ step: ConnectionLifecycle.Step, now: Double) {
        switch step {
        case .wait: break
        case .nextRequest: if !inbox.isEmpty { loop.resumable.append(self) }
        case .close:
            closeAfterFlush = true
            flush(now: now)  // the response may already be out: close now, not on the next write
        }
    }

    private func writeLog() {
        guard let r = record else { return }
        record = nil
        loop.log(AccessRecord(unixMillis: unixMillisNow(), requestID: r.requestID, method: r.method, path: r.path,
                              status: r.status, forwarded: r.forwarded, reason: r.reason, facts: r.facts,
                              latencyMillis: (monotonicNow() - r.start) * 1000, peer: peer.address))
    }

    // MARK: Upstream response (called from curl callbacks)

    /// The upstream head is complete: send ours.
    func upstreamHeadReady(_ relay: ResponseRelay, requestID: String) {
        if relay.framing == .closeDelimited { lifecycle.mustClose() }
        // Answered before the request body is in (and not draining it): the connection cannot be
        // reused, so the answer says so (RFC 9112 §9.6).
        if !lifecycle.requestComplete && !lifecycle.discarding { lifecycle.mustClose() }
        relay.appendHead(requestID: requestID, keepAlive: lifecycle.keepAlive, to: &outbox)
        record?.status = relay.status
        scheduleFlush()
    }

    /// Body bytes from the upstream; false asks curl to pause (client not keeping up).
    func upstreamBody(_ data: UnsafeRawBufferPointer, chunked: Bool) -> Bool {
        if pendingOutput >= loop.settings.outputHighWater { return false }
        if chunked { HTTPResponseWriter.appendChunk(data, to: &outbox) } else { outbox.append(contentsOf: data) }
        scheduleFlush()  // sent when curl returns: each read from the upstream goes out as it comes
        return true
    }

    private var flushPending = false

    private func scheduleFlush() {
        if flushPending { return }
        flushPending = true
        loop.flushable.append(self)
    }

    func flushScheduled(now: Double) {
        flushPending = false
        // The audit record goes to the file before the response's last byte goes to the client:
        // a crash never loses the record of an answer that was received.
        if let ex = exchange, ex.relay.isComplete, record != nil { writeLog() }
        flush(now: now)
        if !closed { resumeUpstreamIfDrained() }
    }

    /// curl paused on a full outbox; once it drains to half, the upstream may deliver again.
    private func resumeUpstreamIfDrained() {
        if let ex = exchange, ex.receivePaused, pendingOutput < loop.settings.outputHighWater / 2 {
            ex.resumeReceiving()
        }
    }

    /// The transfer is over (already detached from the multi handle).
    func exchangeFinished(_ ex: UpstreamExchange, code: CURLcode, now: Double) {
        guard exchange === ex else { return }
        exchange = nil
        if closed { return }
        if code == CURLE_OK && ex.relay.isComplete {
            if ex.relay.framing == .chunked { HTTPResponseWriter.appendLastChunk(to: &outbox) }
            responseEnded(now: now)
            if inputHeld { inputHeld = false; loop.resumable.append(self) }
        } else if !ex.responseStarted && !broken {
            lifecycle.mustClose()
            let denial = ex.digestMismatch ? Denial(.invalidRequest, "the body does not match its Content-Digest (RFC 9530)")
                : code == CURLE_OPERATION_TIMEDOUT
                ? Denial(.gatewayTimeout, "upstream timed out")
                : Denial(.badGateway, ex.relayFailed ? "invalid upstream response" : "upstream unreachable")
            record?.reason = denial.code.rawValue
            respond(denial, requestID: ex.requestID, isHEAD: ex.isHEAD, now: now)
        } else {
            close(now: now)  // the response had started: all we can do is cut it short
        }
    }

    // MARK: Transport: the socket, or TLS over it

    static let wouldBlock = -1

    /// Into the loop's read buffer: bytes, 0 at the end of input, `wouldBlock`, or -2 (failed).
    private func receive() -> Int {
        guard let tls else {
            while true {
                let n = Glibc.read(fd, loop.readBuffer.baseAddress, loop.readBuffer.count)
                if n >= 0 { return n }
                if errno == EINTR { continue }
                return errno == EAGAIN ? Self.wouldBlock : -2
            }
        }
        let n = Int(mandate_tls_read(tls, loop.readBuffer.baseAddress, Int32(loop.readBuffer.count)))
        switch n {
        case Int(MANDATE_TLS_WANT_READ), Int(MANDATE_TLS_WANT_WRITE): return Self.wouldBlock
        case Int(MANDATE_TLS_FAILED): return -2
        default: return n
        }
    }

    /// Bytes taken, `wouldBlock`, or -2 (failed).
    private func transmit(_ bytes: UnsafeRawPointer, _ count: Int) -> Int {
        guard let tls else {
            while true {
                let n = send(fd, bytes, count, Int32(MANDATE_MSG_NOSIGNAL))
                if n > 0 { return n }
                if n < 0 && errno == EINTR { continue }
                return n < 0 && errno == EAGAIN ? Self.wouldBlock : -2
            }
        }
        // SSL_write is retried with the same bytes after WANT_WRITE (the outbox only grows).
        let n = Int(mandate_tls_write(tls, bytes, Int32(min(count, 1 << 30))))
        switch n {
        case Int(MANDATE_TLS_WANT_READ), Int(MANDATE_TLS_WANT_WRITE): return Self.wouldBlock
        case let n where n > 0: return n
        default: return -2
        }
    }

    private func continueHandshake(now: Double) {
        guard let tls else { return }
        if !handshakeStarted {
            // A TLS record starts with 0x16 (handshake); a letter is plain HTTP to the TLS port.
            var first: UInt8 = 0
            let n = recv(fd, &first, 1, Int32(MANDATE_MSG_PEEK))
            if n == 1 && first >= UInt8(ascii: "A") && first <= UInt8(ascii: "Z") { refusePlainHTTP(now: now); return }
            if n == 1 { handshakeStarted = true }
        }
        var want = Epoll.readHangup
        switch Int(mandate_tls_handshake(tls)) {
        case 1:
            handshaking = false
            establish(tls)
            interest = 0  // recomputed below
            updateInterest()
            readAvailable(now: now)  // the first request may have come with the handshake's end
            return
        case MANDATE_TLS_WANT_READ: want |= Epoll.input
        case MANDATE_TLS_WANT_WRITE: want |= Epoll.output
        default: close(now: now); return  // not TLS, no shared protocol or suite, bad ALPN
        }
        if want != interest {
            interest = want
            _ = mandate_epoll_mod(loop.epfd, fd, want, tag)
        }
    }

    private var handshakeStarted = false

    /// As nginx: one plain-text 400 that says what happened, then close.
    private func refusePlainHTTP(now: Double) {
        let id = loop.requestIDs.next()
        let denial = Denial(.invalidRequest, "plain HTTP was sent to a TLS port; use https://")
        let body = denial.jsonBody(requestID: id)
        var out: [UInt8] = []
        HTTPResponseWriter.appendStatusLine(denial.status, to: &out)
        HTTPResponseWriter.appendField("Content-Type", "application/json", to: &out)
        HTTPResponseWriter.appendField("Content-Length", body.count, to: &out)
        HTTPResponseWriter.appendField("Mandate-Request-Id", id, to: &out)
        HTTPResponseWriter.appendField("Connection", "close", to: &out)
        out.append(0x0D); out.append(0x0A)
        out.append(contentsOf: body)
        // Unread input at close would reset the connection and could lose the answer.
        for _ in 0 ..< 4 where Glibc.read(fd, loop.readBuffer.baseAddress, loop.readBuffer.count) > 0 {}
        _ = out.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MANDATE_MSG_NOSIGNAL)) }
        Glibc.shutdown(fd, Int32(MANDATE_SHUT_WR))
        loop.log(AccessRecord(unixMillis: unixMillisNow(), requestID: id, method: "-", path: "-", status: 400,
                              forwarded: false, reason: denial.code.rawValue, facts: AuditFacts(), latencyMillis: 0,
                              peer: peer.address))
        close(now: now)
    }

    /// The handshake is done: what the client certificate, if any, proves.
    private func establish(_ tls: OpaquePointer) {
        guard verifyClient != .off else { return }
        var sha = [UInt8](repeating: 0, count: 32), key = [UInt8](repeating: 0, count: 65)
        var kind: Int32 = 0
        var err = [CChar](repeating: 0, count: 256)
        switch mandate_tls_peer(tls, &sha, &key, &kind, &err, err.count) {
        case 1:
            peer.certificate = ClientCertificate(derSHA256: sha, publicKey: CertificateFile.rawKey(kind, key))
        case 0:
            if verifyClient == .required { transportRefusal = "this listener requires a client certificate" }
        default:
            transportRefusal = "the client certificate did not verify: \(cText(err))"
        }
    }

    // MARK: Output

    private func flush(now: Double) {
        guard !closed else { return }
        while outOffset < outbox.count {
            let n = outbox.withUnsafeBytes { raw in transmit(raw.baseAddress! + outOffset, raw.count - outOffset) }
            if n > 0 { outOffset += n; lifecycle.wrote(now: now); continue }
            if n == Self.wouldBlock { break }
            broken = true
            if exchange == nil { close(now: now) }  // else curl aborts on its next callback
            return
        }
        if outOffset == outbox.count {
            outbox.removeAll(keepingCapacity: outbox.capacity <= 16 << 10)  // idle connections stay small
            outOffset = 0
            if closeAfterFlush && exchange == nil && lifecycle.phase != .closing {
                // Lingering close (RFC 9112 §9.6): stop writing, drain input briefly, then close.
                if let tls { mandate_tls_close_notify(tls) }
                Glibc.shutdown(fd, Int32(MANDATE_SHUT_WR))
                lifecycle.beginClosing(now: now)
            }
        }
        updateInterest()
    }

    /// EPOLLIN stays registered while a response is awaited (two epoll_ctl calls fewer per
    /// request); only input that arrives meanwhile takes it away, until input is wanted again.
    private var inputMuted = false

    private func updateInterest() {
        guard !closed else { return }
        var want = Epoll.readHangup
        if wantsInput {
            want |= Epoll.input
            inputMuted = false
        } else if !inputMuted {
            want |= interest & Epoll.input
        }
        if hasPendingOutput { want |= Epoll.output }
        if want != interest {
            interest = want
            _ = mandate_epoll_mod(loop.epfd, fd, want, tag)
        }
    }

    func close(now: Double) {
        guard !closed else { return }
        closed = true
        if let ex = exchange {
            loop.detach(ex)
            exchange = nil
        }
        // Unanswered, forwarded or still waiting on a fetch: the client went away (nginx's 499).
        if record != nil && record!.status == 0 { record!.status = 499 }
        if record != nil { writeLog() }
        if let tls { mandate_tls_free(tls) }
        Glibc.close(fd)
        loop.release(slot: slot)
    }
}
