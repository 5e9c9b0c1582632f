import CCurl
import CMandateShim
import MandateCore
import MandateCrypto
import MandateHTTP

/// One forwarded request as a libcurl easy handle in the loop's multi handle. The request body
/// streams in from the client (read callback, paused while empty); the response streams out
/// (header and write callbacks, paused while the client is slow). Never retried.
final class UpstreamExchange {
    unowned let connection: ClientConnection
    let easy: UnsafeMutableRawPointer
    let requestID: String
    let isHEAD: Bool
    private(set) var relay: ResponseRelay
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private var body: [UInt8] = []
    private var bodyOffset = 0
    private var bodyComplete = false
    /// RFC 9530: the body is hashed as it arrives; its last byte goes upstream only once the
    /// digest matched, so the upstream never gets a complete body that does not.
    private let expectedDigest: ContentDigest?
    private let digest: StreamingDigest?
    private var digestChecked = false
    private(set) var digestMismatch = false
    private(set) var sendPaused = false
    private(set) var receivePaused = false
    private(set) var responseStarted = false
    private(set) var relayFailed = false
    var detached = false

    var pendingBody: Int { body.count - bodyOffset }

    init?(connection: ClientConnection, head: HTTPRequestHead, plan: ForwardPlan, requestID: String,
          settings: LoopSettings) {
        // A field line that could split in two upstream is never sent (RFC 9110 §5.5).
        for h in plan.headers where Self.mayBreakLine(h.name) || Self.mayBreakLine(h.value) { return nil }
        guard let easy = connection.loop.takeEasyHandle() else { return nil }
        self.connection = connection; self.easy = easy; self.requestID = requestID
        isHEAD = head.method == "HEAD"
        expectedDigest = plan.bodyDigest
        digest = plan.bodyDigest.map { StreamingDigest($0.algorithm) }
        relay = ResponseRelay(requestIsHEAD: isHEAD, clientMinorVersion: head.minorVersion)
        configure(head: head, plan: plan, settings: settings)
    }

    /// What every transfer of a pooled handle shares, set once when the handle is made
    /// (handles are reused without curl_easy_reset: a dozen setopts fewer per request).
    static func prepare(_ easy: UnsafeMutableRawPointer, settings: LoopSettings) {
        (settings.upstreamOrigin + "/").withCString { _ = mandate_curl_easy_setopt_ptr(easy, CURLOPT_URL, $0) }
        "http,https".withCString { _ = mandate_curl_easy_setopt_ptr(easy, CURLOPT_PROTOCOLS_STR, $0) }
        // The upstream is the configured one: no http_proxy/HTTPS_PROXY from the environment.
        "".withCString { _ = mandate_curl_easy_setopt_ptr(easy, CURLOPT_PROXY, $0) }
        _ = mandate_curl_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        _ = mandate_curl_easy_setopt_long(easy, CURLOPT_TCP_KEEPALIVE, 1)
        _ = mandate_curl_easy_setopt_long(easy, CURLOPT_TCP_NODELAY, 1)
        _ = mandate_curl_easy_setopt_long(easy, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_1_1))
        _ = mandate_curl_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, Int(settings.connectTimeout * 1000))
        // No total timeout (streams may be long); a transfer idle for upstreamTimeout is cut.
        _ = mandate_curl_easy_setopt_long(easy, CURLOPT_LOW_SPEED_LIMIT, 1)
        _ = mandate_curl_easy_setopt_long(easy, CURLOPT_LOW_SPEED_TIME, max(1, Int(settings.upstreamTimeout)))
        _ = mandate_curl_easy_setopt_write(easy, CURLOPT_HEADERFUNCTION) { buf, size, n, ud in
            Unmanaged<UpstreamExchange>.fromOpaque(ud!).takeUnretainedValue()
                .onHeaderLine(UnsafeRawBufferPointer(start: buf, count: size * n))
        }
        _ = mandate_curl_easy_setopt_write(easy, CURLOPT_WRITEFUNCTION) { buf, size, n, ud in
            Unmanaged<UpstreamExchange>.fromOpaque(ud!).takeUnretainedValue()
                .onBody(UnsafeRawBufferPointer(start: buf, count: size * n))
        }
        _ = mandate_curl_easy_setopt_write(easy, CURLOPT_READFUNCTION) { buf, size, n, ud in
            Unmanaged<UpstreamExchange>.fromOpaque(ud!).takeUnretainedValue()
                .onRead(UnsafeMutableRawBufferPointer(start: buf, count: size * n))
        }
    }

    /// This transfer's options. Everything a previous transfer of the handle may have set is set
    /// again here.
    private func configure(head: HTTPRequestHead, plan: ForwardPlan, settings: LoopSettings) {
        let me = Unmanaged.passUnretained(self).toOpaque()
        // The exact target policy decided on, no URL re-normalisation by curl.
        let target = settings.upstreamPrefix + plan.target
        target.withCString { _ = mandate_curl_easy_setopt_ptr(easy, CURLOPT_REQUEST_TARGET, $0) }
        _ = mandate_curl_easy_setopt_ptr(easy, CURLOPT_PRIVATE, me)
        _ = mandate_curl_easy_setopt_ptr(easy, CURLOPT_HEADERDATA, me)
        _ = mandate_curl_easy_setopt_ptr(easy, CURLOPT_WRITEDATA, me)
        _ = mandate_curl_easy_setopt_ptr(easy, CURLOPT_READDATA, me)

        var hasBody: Bool
        var size: curl_off_t = -1  // unknown: curl sends chunked (RFC 9112 §7.1)
        switch head.framing {
        case .none:
            hasBody = false
            // Never retried: curl resends on a reused connection that died, unless it would have to
            // rewind a body it cannot rewind. So a non-idempotent request always has a body (RFC 9110 §9.2.2).
            if !Self.idempotent.contains(head.method) && !isHEAD { hasBody = true; size = 0 }
        case .length(let n):
            hasBody = true; size = curl_off_t(n)
        case .chunked:
            hasBody = true
        }
        // UPLOAD sets curl's method to PUT (1) or GET (0); NOBODY then to HEAD.
        _ = mandate_curl_easy_setopt_long(easy, CURLOPT_UPLOAD, hasBody && !isHEAD ? 1 : 0)
        _ = mandate_curl_easy_setopt_long(easy, CURLOPT_NOBODY, isHEAD ? 1 : 0)
        _ = mandate_curl_easy_setopt_off(easy, CURLOPT_INFILESIZE_LARGE, size)
        // CURLOPT_UPLOAD alone means PUT: name the method whenever there is a body.
        if (head.method != "GET" || hasBody) && !isHEAD {
            head.method.withCString { _ = mandate_curl_easy_setopt_ptr(easy, CURLOPT_CUSTOMREQUEST, $0) }
        } else {
            _ = mandate_curl_easy_setopt_ptr(easy, CURLOPT_CUSTOMREQUEST, nil)
        }

        // Exactly the plan's fields. Framing is curl's to write; its own Expect and Accept are suppressed.
        var hasAccept = false
        var line: [UInt8] = []
        swap(&line, &connection.loop.headerLine)  // taken, not shared: no copy on write
        defer { swap(&line, &connection.loop.headerLine) }
        for h in plan.headers {
            if fieldNameIs(h.name, "content-length") || fieldNameIs(h.name, "transfer-encoding")
                || fieldNameIs(h.name, "expect") { continue }
            if fieldNameIs(h.name, "accept") { hasAccept = true }
            // "Name;" is curl's spelling of a field with an empty value. One scratch line for all.
            line.removeAll(keepingCapacity: true)
            line.append(contentsOf: h.name.utf8)
            if h.value.isEmpty { line.append(UInt8(ascii: ";")) } else { line.append(contentsOf: ": ".utf8) }
            line.append(contentsOf: h.value.utf8)
            line.append(0)
            headerList = line.withUnsafeBufferPointer {
                $0.withMemoryRebound(to: CChar.self) { curl_slist_append(headerList, $0.baseAddress) }
            }
        }
        headerList = curl_slist_append(headerList, "Expect:")
        if !hasAccept { headerList = curl_slist_append(headerList, "Accept:") }
        _ = mandate_curl_easy_setopt_ptr(easy, CURLOPT_HTTPHEADER, headerList)
    }

    static let idempotent: Set<String> = ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]

    /// CR, LF or NUL anywhere.
    private static func mayBreakLine(_ s: String) -> Bool {
        var s = s
        return s.withUTF8 { b in b.contains { $0 == 0x0d || $0 == 0x0a || $0 == 0 } }
    }

    func releaseHeaders() {
        curl_slist_free_all(headerList)
        headerList = nil
    }

    // MARK: Request body, client → upstream

    func appendBody(_ bytes: UnsafeRawBufferPointer) {
        if bodyOffset > 64 << 10 { body.removeFirst(bodyOffset); bodyOffset = 0 }
        digest?.update(bytes)
        body.append(contentsOf: bytes)
        if sendPaused { unpause(send: true) }
    }

    func endBody() {
        bodyComplete = true
        if sendPaused { unpause(send: true) }
    }

    private func onRead(_ out: UnsafeMutableRawBufferPointer) -> Int {
        if let expectedDigest, bodyComplete, !digestChecked, let digest {
            digestChecked = true
            digestMismatch = !constantTimeEqual(digest.finish(), expectedDigest.digest)
        }
        if digestMismatch { return Curl.readAbort }
        // With a digest to check, one byte waits for the end of the body.
        let available = pendingBody - (digest != nil && !bodyComplete ? 1 : 0)
        if available <= 0 {
            if bodyComplete { return 0 }
            sendPaused = true
            return Curl.readPause
        }
        let n = min(available, out.count)
        body.withUnsafeBytes { src in
            out.baseAddress!.copyMemory(from: src.baseAddress! + bodyOffset, byteCount: n)
        }
        bodyOffset += n
        if bodyOffset == body.count { body.removeAll(keepingCapacity: true); bodyOffset = 0 }
        connection.bodyDrained(pending: pendingBody)
        return n
    }

    // MARK: Response, upstream → client

    private func onHeaderLine(_ line: UnsafeRawBufferPointer) -> Int {
        if connection.broken { return 0 }
        switch relay.consume(line) {
        case .more:
            return line.count
        case .complete:
            if !responseStarted {
                responseStarted = true
                connection.upstreamHeadReady(relay, requestID: requestID)
            }
            return line.count
        case .invalid:
            relayFailed = true
            return 0
        }
    }

    private func onBody(_ data: UnsafeRawBufferPointer) -> Int {
        if connection.broken { return 0 }
        guard relay.isComplete else { relayFailed = true; return 0 }
        if relay.framing == .none || data.isEmpty { return data.count }
        if connection.upstreamBody(data, chunked: relay.framing == .chunked) { return data.count }
        receivePaused = true
        return Curl.writePause
    }

    /// The client drained its output: let curl deliver again.
    func resumeReceiving() { unpause(send: false) }

    private func unpause(send: Bool) {
        guard !detached else { return }
        if send { sendPaused = false } else { receivePaused = false }
        _ = curl_easy_pause(easy, (sendPaused ? Curl.pauseSend : 0) | (receivePaused ? Curl.pauseRecv : 0))
    }
}
