import Glibc
import Synchronization
import CCurl
import CMandateShim
import MandateCore
import MandateHTTP

/// epoll user data: the kind in the top byte, an index or fd below.
enum EventTag {
    static let listen: UInt64 = 1 << 56
    static let wake: UInt64 = 2 << 56
    static let client: UInt64 = 3 << 56
    static let curl: UInt64 = 4 << 56
    static let post: UInt64 = 5 << 56
    static let kindMask: UInt64 = 0xFF << 56
}

/// How a curl socket is registered in the loop's epoll set.
enum CurlWatch {
    case none
    case active(UInt32)
    /// curl stopped watching it (between transfers on a kept-alive connection); still registered.
    case parked(UInt32)
}

/// Per-loop settings derived once from `ProxyConfig`.
struct LoopSettings: Sendable {
    var limits: HTTPParserLimits
    var headerTimeout: Double
    var idleTimeout: Double
    var connectTimeout: Double
    var upstreamTimeout: Double
    /// `scheme://host[:port]` of the upstream, and its path prefix without a trailing '/'.
    var upstreamOrigin: String
    var upstreamPrefix: String
    var maxConnections: Int
    /// Open upstream connections per loop, at most.
    var maxUpstreamConnections = 1024
    /// A refused request's body up to this size is drained to keep the connection; larger closes.
    var maxDrain = 64 << 10
    /// Output bytes queued for a client before libcurl is paused (backpressure).
    var outputHighWater = 256 << 10
    /// Request-body bytes queued for the upstream before the client is no longer read.
    var inputHighWater = 256 << 10

    init(config: ProxyConfig, maxConnections: Int) throws {
        limits = HTTPParserLimits(maxURILength: config.maxURILength, maxHeaderBytes: config.maxHeaderBytes,
                                  maxHeaderCount: config.maxHeaderCount, maxBodySize: config.clientMaxBodySize)
        headerTimeout = config.headerTimeout; idleTimeout = config.idleTimeout
        connectTimeout = config.upstreamConnectTimeout; upstreamTimeout = config.upstreamTimeout
        (upstreamOrigin, upstreamPrefix) = try Self.split(upstream: config.upstream)
        self.maxConnections = maxConnections
    }

    static func split(upstream: String) throws -> (String, String) {
        let u = Array(upstream.utf8)
        let scheme = upstream.hasPrefix("http://") ? 7 : upstream.hasPrefix("https://") ? 8 : 0
        guard scheme > 0, u.count > scheme else { throw ServerError("upstream: '\(upstream)' is not an http(s) URL") }
        guard let slash = u[scheme...].firstIndex(of: 0x2F) else { return (upstream, "") }
        var end = u.count
        while end > slash && u[end - 1] == 0x2F { end -= 1 }
        return (String(decoding: u[..<slash], as: UTF8.self), String(decoding: u[slash ..< end], as: UTF8.self))
    }
}

/// One event loop: its listen sockets, the client connections it accepted, one curl multi handle
/// driven by the same epoll set. Confined to its own thread once `run()` starts (hence
/// @unchecked Sendable); only `wake()` is called from other threads.
final class EventLoop: @unchecked Sendable {
    let settings: LoopSettings
    let gate: any RequestGate
    let epfd: Int32
    let wakeFD: Int32
    /// Other threads hand connections back here (`post`): their tags, then a write to `postFD`.
    let postFD: Int32
    private let posted = Mutex<[UInt64]>([])
    private(set) var listenFDs: [Int32]
    /// By listen socket: its TLS listener, nil for plain HTTP.
    private let listenTLS: [TLSListener?]
    private var connections: [ClientConnection?] = []
    private var generations: [UInt32] = []
    private var freeSlots: [Int] = []
    /// Open connections: written by this loop, read by /metrics.
    let openConnections = Atomic<Int>(0)
    var liveConnections: Int { openConnections.load(ordering: .relaxed) }
    /// Shared by every connection of this loop: reads land here, then get parsed in place.
    let readBuffer: UnsafeMutableRawBufferPointer
    private(set) var multi: UnsafeMutableRawPointer!
    private var curlDeadline: Double?
    private var easyPool: [UnsafeMutableRawPointer] = []
    /// Connections whose request-body backpressure was released inside a curl callback.
    var resumable: [ClientConnection] = []
    /// Connections with response bytes queued inside curl callbacks: one send each once curl returns.
    var flushable: [ClientConnection] = []
    /// epoll registration of curl's sockets, by fd (see `curlSocket`).
    private var curlWatch: [CurlWatch] = []
    var requestIDs = RequestIDGenerator()
    let logSink: AccessLogSink
    let audit: AuditTrail?
    /// Counts decisions for registered agents (last seen, requests, denials).
    let activity: LiveRegistry?
    let metrics = LoopMetrics()
    var logBytes: [UInt8] = []
    var logLine = ""
    /// Scratch for one upstream header line as curl takes it (it copies).
    var headerLine: [UInt8] = []
    private var stopping = false
    /// Returns from epoll_wait (tests: a loop that never sleeps shows here).
    let wakeups = Atomic<Int>(0)

    init(settings: LoopSettings, gate: any RequestGate, listenFDs: [Int32], listenTLS: [TLSListener?],
         logSink: AccessLogSink, audit: AuditTrail? = nil, activity: LiveRegistry? = nil) throws {
        self.audit = audit
        self.activity = activity
        self.settings = settings; self.gate = gate; self.listenFDs = listenFDs; self.listenTLS = listenTLS
        self.logSink = logSink
        epfd = mandate_epoll_create()
        wakeFD = mandate_eventfd()
        postFD = mandate_eventfd()
        guard epfd >= 0, wakeFD >= 0, postFD >= 0 else { throw ServerError("epoll/eventfd: errno \(errno)") }
        readBuffer = .allocate(byteCount: 64 << 10, alignment: 16)
        logBytes.reserveCapacity(16 << 10)
        logLine.reserveCapacity(512)
        for (i, fd) in listenFDs.enumerated() {
            _ = mandate_epoll_add(epfd, fd, Epoll.input, EventTag.listen | UInt64(i))
        }
        _ = mandate_epoll_add(epfd, wakeFD, Epoll.input, EventTag.wake)
        _ = mandate_epoll_add(epfd, postFD, Epoll.input, EventTag.post)
        multi = curl_multi_init()
        let me = Unmanaged.passUnretained(self).toOpaque()
        _ = mandate_curl_multi_setopt_socketfn(multi) { _, fd, what, userp, _ in
            Unmanaged<EventLoop>.fromOpaque(userp!).takeUnretainedValue().curlSocket(fd, what)
            return 0
        }
        _ = mandate_curl_multi_setopt_ptr(multi, CURLMOPT_SOCKETDATA, me)
        _ = mandate_curl_multi_setopt_timerfn(multi) { _, ms, userp in
            Unmanaged<EventLoop>.fromOpaque(userp!).takeUnretainedValue().curlTimer(ms)
            return 0
        }
        _ = mandate_curl_multi_setopt_ptr(multi, CURLMOPT_TIMERDATA, me)
        _ = mandate_curl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, 512)
        _ = mandate_curl_multi_setopt_long(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, settings.maxUpstreamConnections)
    }

    deinit {
        readBuffer.deallocate()
    }

    /// Thread-safe: the connection with this tag is to be admitted again (its wait is over).
    func post(_ tag: UInt64) {
        posted.withLock { $0.append(tag) }
        var one: UInt64 = 1
        _ = Glibc.write(postFD, &one, 8)
    }

    /// Thread-safe: asks the loop to stop.
    func wake() {
        var one: UInt64 = 1
        _ = Glibc.write(wakeFD, &one, 8)
    }

    // MARK: The loop

    func run() {
        let capacity = 256
        let events = UnsafeMutablePointer<mandate_event>.allocate(capacity: capacity)
        defer { events.deallocate() }
        var nextSweep = monotonicNow() + 0.25
        while !stopping {
            var timeout: Int32 = 250
            if let d = curlDeadline {
                timeout = Int32(max(0, min(250, ((d - monotonicNow()) * 1000).rounded(.up))))
            }
            let n = mandate_epoll_wait(epfd, events, Int32(capacity), timeout)
            wakeups.store(wakeups.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
            let now = monotonicNow()
            if n > 0 { for i in 0 ..< Int(n) { dispatch(events[i], now) } }
            if let d = curlDeadline, d <= now {
                curlDeadline = nil
                socketAction(Curl.socketTimeout, 0)
            }
            flushQueued()  // curl_easy_pause may have delivered outside socketAction
            resumeConnections(now)
            if now >= nextSweep { nextSweep = now + 0.25; sweep(now) }
            if !logBytes.isEmpty { logSink.write(&logBytes) }
        }
        shutdownLoop()
    }

    private func dispatch(_ ev: mandate_event, _ now: Double) {
        let payload = ev.data & ~EventTag.kindMask
        switch ev.data & EventTag.kindMask {
        case EventTag.client:
            let slot = Int(payload & 0xFF_FFFF)
            guard slot < connections.count, generations[slot] == UInt32(truncatingIfNeeded: payload >> 24),
                  let c = connections[slot] else { return }
            c.handle(events: ev.events, now: now)
        case EventTag.curl:
            var mask: Int32 = 0
            if ev.events & (Epoll.input | Epoll.hangup) != 0 { mask |= Curl.selectIn }
            if ev.events & Epoll.output != 0 { mask |= Curl.selectOut }
            if ev.events & Epoll.error != 0 { mask |= Curl.selectErr }
            curlEvent(Int32(truncatingIfNeeded: payload), mask)
        case EventTag.listen:
            acceptConnections(Int(payload), now)
        case EventTag.post:
            var v: UInt64 = 0
            _ = Glibc.read(postFD, &v, 8)
            for tag in posted.withLock({ p in defer { p = [] }; return p }) {
                let slot = Int(tag & 0xFF_FFFF)
                guard slot < connections.count, generations[slot] == UInt32(truncatingIfNeeded: (tag & ~EventTag.kindMask) >> 24),
                      let c = connections[slot] else { continue }  // gone meanwhile
                c.readmit(now: now)
            }
        case EventTag.wake:
            var v: UInt64 = 0
            _ = Glibc.read(wakeFD, &v, 8)
            stopping = true
        default:
            break
        }
    }

    private func shutdownLoop() {
        for fd in listenFDs { close(fd) }
        listenFDs = []
        for c in connections { c?.close(now: monotonicNow()) }
        for e in easyPool { curl_easy_cleanup(e) }
        easyPool = []
        curl_multi_cleanup(multi)
        if !logBytes.isEmpty { logSink.write(&logBytes) }
        close(epfd); close(wakeFD); close(postFD)
    }

    // MARK: Connections

    private func acceptConnections(_ index: Int, _ now: Double) {
        let lfd = listenFDs[index]
        for _ in 0 ..< 64 {
            let fd = mandate_accept4(lfd, nil, nil)
            if fd < 0 { return }
            if liveConnections >= settings.maxConnections && !evictIdleConnection(now) {
                close(fd)  // full of busy connections: refuse the newcomer rather than an honest client
                continue
            }
            _ = mandate_set_nodelay(fd)
            var session: (OpaquePointer, ProxyConfig.TLS.ClientVerification)?
            if let t = listenTLS[index] {
                guard let s = t.session(fd: fd) else { close(fd); continue }
                session = s
            }
            // The number was free, so a parked curl socket with it is gone (see `curlSocket`).
            if Int(fd) < curlWatch.count { curlWatch[Int(fd)] = .none }
            let slot: Int
            if let s = freeSlots.popLast() { slot = s } else {
                slot = connections.count; connections.append(nil); generations.append(0)
            }
            let tag = EventTag.client | UInt64(generations[slot]) << 24 | UInt64(slot)
            var name = [CChar](repeating: 0, count: 64)
            let peer = mandate_peer_name(fd, &name, 64) == 0
                ? String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "-"
            let c = ClientConnection(loop: self, fd: fd, slot: slot, tag: tag, address: peer, tls: session, now: now)
            connections[slot] = c
            openConnections.add(1, ordering: .relaxed)
            _ = mandate_epoll_add(epfd, fd, c.interest, tag)
        }
    }

    /// Called by a connection once its fd is closed.
    func release(slot: Int) {
        connections[slot] = nil
        generations[slot] &+= 1
        freeSlots.append(slot)
        openConnections.subtract(1, ordering: .relaxed)
    }

    /// Under connection pressure the idle keep-alive connection that has waited longest goes first.
    private func evictIdleConnection(_ now: Double) -> Bool {
        var victim: ClientConnection?
        for case let c? in connections where c.lifecycle.phase == .idle || c.lifecycle.phase == .closing {
            if victim == nil || c.lifecycle.deadline < victim!.lifecycle.deadline { victim = c }
        }
        victim?.close(now: now)
        return victim != nil
    }

    private func sweep(_ now: Double) {
        for case let c? in connections {
            switch c.lifecycle.expiry(now: now, writeBlocked: c.hasPendingOutput) {
            case .none: break
            case .close: c.close(now: now)
            case .requestTimeout: c.headerTimedOut(now: now)
            }
        }
    }

    private func resumeConnections(_ now: Double) {
        while let c = resumable.popLast() { c.resumeInput(now: now) }
    }

    // MARK: libcurl multi, driven by this epoll set

    /// A kept-alive upstream connection goes quiet between transfers (curl says "remove") and is
    /// watched again by the next one. It stays in the epoll set meanwhile ("parked"): one
    /// EPOLL_CTL_MOD on reuse instead of DEL, then a failed MOD and an ADD. The MOD also finds a
    /// number that curl closed and reopened (ENOENT: add it). A parked socket that wakes up (the
    /// upstream closed it) leaves the set; curl finds it dead when it next tries it.
    private func curlSocket(_ fd: Int32, _ what: Int32) {
        let i = Int(fd)
        guard i >= 0 else { return }
        if i >= curlWatch.count { curlWatch.append(contentsOf: repeatElement(.none, count: i + 64 - curlWatch.count)) }
        if what == Curl.pollRemove {
            if case .active(let m) = curlWatch[i] { curlWatch[i] = .parked(m) }
            return
        }
        var events: UInt32 = 0
        if what & Curl.pollIn != 0 { events |= Epoll.input }
        if what & Curl.pollOut != 0 { events |= Epoll.output }
        let tag = EventTag.curl | UInt64(UInt32(bitPattern: fd))
        switch curlWatch[i] {
        case .active(let m) where m == events:
            return
        case .active, .parked:
            if mandate_epoll_mod(epfd, fd, events, tag) != 0 { _ = mandate_epoll_add(epfd, fd, events, tag) }
        case .none:
            if mandate_epoll_add(epfd, fd, events, tag) != 0 { _ = mandate_epoll_mod(epfd, fd, events, tag) }
        }
        curlWatch[i] = .active(events)
    }

    /// An event on a curl socket: curl's, unless curl no longer watches it.
    private func curlEvent(_ fd: Int32, _ mask: Int32) {
        let i = Int(fd)
        if i >= 0 && i < curlWatch.count, case .parked = curlWatch[i] {
            _ = mandate_epoll_del(epfd, fd)
            curlWatch[i] = .none
            return
        }
        socketAction(fd, mask)
    }

    private func curlTimer(_ ms: Int) {
        curlDeadline = ms < 0 ? nil : monotonicNow() + Double(ms) / 1000
    }

    private func socketAction(_ fd: Int32, _ mask: Int32) {
        var running: Int32 = 0
        _ = curl_multi_socket_action(multi, fd, mask, &running)
        var easy: UnsafeMutableRawPointer?
        var code = CURLE_OK
        while mandate_curl_multi_info_read(multi, &easy, &code) == 1, let e = easy {
            var priv: UnsafeMutableRawPointer?
            _ = mandate_curl_easy_getinfo_ptr(e, CURLINFO_PRIVATE, &priv)
            guard let priv else { continue }
            let exchange = Unmanaged<UpstreamExchange>.fromOpaque(priv).takeUnretainedValue()
            detach(exchange)
            exchange.connection.exchangeFinished(exchange, code: code, now: monotonicNow())
        }
        flushQueued()
    }

    /// Sends what curl callbacks queued: a response's head and body leave in one write.
    func flushQueued() {
        if flushable.isEmpty { return }
        let now = monotonicNow()
        while let c = flushable.popLast() { c.flushScheduled(now: now) }
    }

    /// An easy handle for a new exchange, from the pool when possible (its buffers are reused).
    func takeEasyHandle() -> UnsafeMutableRawPointer? {
        if let e = easyPool.popLast() { return e }
        guard let e = curl_easy_init() else { return nil }
        UpstreamExchange.prepare(e, settings: settings)
        return e
    }

    func attach(_ exchange: UpstreamExchange) -> Bool {
        if curl_multi_add_handle(multi, exchange.easy) == CURLM_OK { return true }
        exchange.detached = true
        exchange.releaseHeaders()
        curl_easy_cleanup(exchange.easy)
        return false
    }

    /// Removes the transfer from the multi handle (also for a client that went away mid-transfer).
    func detach(_ exchange: UpstreamExchange) {
        guard !exchange.detached else { return }
        exchange.detached = true
        _ = curl_multi_remove_handle(multi, exchange.easy)
        exchange.releaseHeaders()
        // A handle that ended paused is not reused: a pause may outlive its transfer.
        if easyPool.count < 256 && !exchange.sendPaused && !exchange.receivePaused {
            easyPool.append(exchange.easy)
        } else {
            curl_easy_cleanup(exchange.easy)
        }
    }

    // MARK: Access log

    func log(_ record: AccessRecord) {
        metrics.record(forwarded: record.forwarded, reason: record.reason, seconds: record.latencyMillis / 1000)
        audit?.append(record.auditFields(), unixMillis: record.unixMillis)
        activity?.record(agent: record.facts.agent, forwarded: record.forwarded, unixMillis: record.unixMillis)
        guard logSink.fd >= 0 else { return }
        logLine.removeAll(keepingCapacity: true)
        record.appendLine(to: &logLine)
        logBytes.append(contentsOf: logLine.utf8)
        if logBytes.count > 64 << 10 { logSink.write(&logBytes) }
    }
}
