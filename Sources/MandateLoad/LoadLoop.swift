import Glibc
import CMandateShim

/// One keep-alive connection of the load generator.
struct LoadConnection {
    enum State { case closed, connecting, free, sending, awaiting }
    var fd: Int32 = -1
    var generation: UInt32 = 0
    var state = State.closed
    var reader = HTTPResponseReader()
    var out: [UInt8] = []
    var outOffset = 0
    /// Latency runs from here: the due time (open loop) or the send time (closed loop).
    var start = 0.0
    var sentAt = 0.0
    var reconnectAt = 0.0
}

/// One I/O thread: its own epoll set, connections and tally. Confined to its thread once `run`
/// starts (hence @unchecked Sendable); `tally` is read after the thread is joined.
final class LoadLoop: @unchecked Sendable {
    let plan: LoadPlan
    let address: sockaddr_storage
    let minter: ProofMinter?
    /// Without a minter: the requests sent in turn (one, or one pre-signed per identity).
    let fixedRequests: [[UInt8]]
    var nextFixed = 0
    let rate: Double?  // this loop's share of the open-loop rate
    let epfd: Int32
    let wakeFD: Int32
    var conns: [LoadConnection]
    var free: [Int] = []
    var credentials: [[UInt8]] = []
    var tally = LoadTally()
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)
    let expectBody: Bool
    /// Open loop: request k is due at t0 + k / rate; those before `firstUnsent` have been sent.
    var firstUnsent = 0
    var starvedSince: Double?
    var measureStart = 0.0, end = 0.0, t0 = 0.0
    static let wakeTag = UInt64.max

    init(plan: LoadPlan, address: sockaddr_storage, connections: Int, rate: Double?, minter: ProofMinter?,
         fixedRequests: [[UInt8]]) {
        self.plan = plan; self.address = address; self.rate = rate; self.minter = minter
        self.fixedRequests = fixedRequests
        expectBody = plan.template.method != "HEAD"
        epfd = mandate_epoll_create()
        wakeFD = mandate_eventfd()
        conns = [LoadConnection](repeating: LoadConnection(), count: connections)
        _ = mandate_epoll_add(epfd, wakeFD, Epoll.input, Self.wakeTag)
    }

    deinit {
        readBuffer.deallocate()
        close(epfd); close(wakeFD)
    }

    /// Runs from `t0` to `t0 + warmup + duration`; counts only what starts after the warm-up.
    func run(t0: Double) {
        self.t0 = t0
        measureStart = t0 + plan.warmup
        end = measureStart + plan.duration
        for i in conns.indices { connect(i, now: monotonicNow()) }
        let events = UnsafeMutablePointer<mandate_event>.allocate(capacity: 256)
        defer { events.deallocate() }
        var nextSweep = t0 + 0.05
        while true {
            let now = monotonicNow()
            if now >= end { break }
            var wakeAt = min(end, nextSweep)
            // A starved loop waits for the minters' eventfd instead.
            if let rate, !free.isEmpty, starvedSince == nil { wakeAt = min(wakeAt, t0 + Double(firstUnsent) / rate) }
            var n = mandate_epoll_wait(epfd, events, 256, 0)
            if n == 0 { n = mandate_epoll_wait_ns(epfd, events, 256, Int64(max(0, wakeAt - now) * 1e9)) }
            let t = monotonicNow()
            for i in 0 ..< Int(max(0, n)) { handle(events[i], now: t) }
            if t >= nextSweep { nextSweep = t + 0.05; sweep(now: t) }
            dispatch(now: monotonicNow())
        }
        finish(now: monotonicNow())
    }

    private func finish(now: Double) {
        if let rate {
            let dueByEnd = Int(((end - t0) * rate).rounded(.down))
            tally.unsentAtEnd = UInt64(max(0, dueByEnd - firstUnsent))
            let dueAtMeasure = Int(((measureStart - t0) * rate).rounded(.up))
            tally.due = UInt64(max(0, dueByEnd - dueAtMeasure))
        }
        if let s = starvedSince { tally.mintStarvedSeconds += now - s }
        for i in conns.indices where conns[i].fd >= 0 { close(conns[i].fd); conns[i].fd = -1 }
    }

    // MARK: Sending

    /// Gives free connections work: the next due request (open loop) or a new one (closed loop).
    private func dispatch(now: Double) {
        while let i = free.last {
            guard conns[i].state == .free else { free.removeLast(); continue }
            var start = now
            if let rate {
                let due = t0 + Double(firstUnsent) / rate
                guard due <= now, due < end else { break }
                start = due
            }
            guard let request = nextRequest(now: now) else { break }
            free.removeLast()
            if rate != nil { firstUnsent += 1 }
            send(i, request, start: start, now: now)
        }
    }

    private func nextRequest(now: Double) -> [UInt8]? {
        guard let minter else {
            nextFixed = nextFixed + 1 == fixedRequests.count ? 0 : nextFixed + 1
            return fixedRequests[nextFixed]
        }
        if credentials.isEmpty { minter.take(into: &credentials, max: 64, wakeFD: wakeFD) }
        guard let r = credentials.popLast() else {
            if starvedSince == nil { starvedSince = now }
            return nil
        }
        if let s = starvedSince { tally.mintStarvedSeconds += now - s; starvedSince = nil }
        return r
    }

    private func send(_ i: Int, _ request: [UInt8], start: Double, now: Double) {
        conns[i].out = request
        conns[i].outOffset = 0
        conns[i].start = start
        conns[i].sentAt = now
        conns[i].state = .sending
        conns[i].reader.expectResponse(bodyExpected: expectBody)
        tally.sent += 1
        flush(i, now: now)
    }

    private func flush(_ i: Int, now: Double) {
        let fd = conns[i].fd
        while conns[i].outOffset < conns[i].out.count {
            let off = conns[i].outOffset
            let n = conns[i].out.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, $0.count - off, Int32(MANDATE_MSG_NOSIGNAL)) }
            if n > 0 { conns[i].outOffset += n; continue }
            if n < 0 && (errno == EAGAIN || errno == EINTR) {
                _ = mandate_epoll_mod(epfd, fd, Epoll.input | Epoll.output, tag(i))
                return
            }
            fail(i, .reset, now: now)
            return
        }
        if conns[i].state == .sending {
            conns[i].state = .awaiting
            if conns[i].out.count - conns[i].outOffset == 0 && conns[i].outOffset > 0 {
                conns[i].out = []  // release the signed request
            }
            _ = mandate_epoll_mod(epfd, fd, Epoll.input, tag(i))
        }
    }

    // MARK: Events

    private func tag(_ i: Int) -> UInt64 { UInt64(conns[i].generation) << 32 | UInt64(i) }

    private func handle(_ ev: mandate_event, now: Double) {
        if ev.data == Self.wakeTag {
            var v: UInt64 = 0
            _ = read(wakeFD, &v, 8)
            return
        }
        let i = Int(ev.data & 0xFFFF_FFFF)
        guard i < conns.count, conns[i].generation == UInt32(ev.data >> 32), conns[i].fd >= 0 else { return }
        if conns[i].state == .connecting {
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            _ = getsockopt(conns[i].fd, Socket.solSocket, Socket.error, &err, &len)
            if err != 0 || ev.events & (Epoll.error | Epoll.hangup) != 0 { fail(i, .connect, now: now); return }
            guard ev.events & Epoll.output != 0 else { return }
            becomeFree(i)
            return
        }
        if ev.events & (Epoll.input | Epoll.error | Epoll.hangup) != 0 {
            readAvailable(i, now: now)
            if conns[i].fd < 0 || conns[i].state == .connecting { return }
        }
        if ev.events & Epoll.output != 0 && conns[i].state == .sending { flush(i, now: now) }
    }

    private func readAvailable(_ i: Int, now: Double) {
        let fd = conns[i].fd
        let n = recv(fd, readBuffer.baseAddress, readBuffer.count, 0)
        if n < 0 {
            if errno == EAGAIN || errno == EINTR { return }
            if conns[i].state == .free { reconnect(i, now: now) } else { fail(i, .reset, now: now) }
            return
        }
        if n == 0 {
            switch conns[i].state {
            case .awaiting, .sending:
                if conns[i].reader.endsAtClose, case .complete(let status, _, _) = conns[i].reader.finishAtEOF() {
                    complete(i, status: status, keepAlive: false, now: now)
                } else {
                    fail(i, .closedMidResponse, now: now)
                }
            default:
                reconnect(i, now: now)  // the target closed an idle keep-alive connection
            }
            return
        }
        guard conns[i].state == .awaiting || conns[i].state == .sending else {
            fail(i, .invalidResponse, now: now)  // bytes nobody asked for
            return
        }
        switch conns[i].reader.feed(UnsafeRawBufferPointer(rebasing: readBuffer[0 ..< n])) {
        case .needMore: break
        case .complete(let status, let keepAlive, _): complete(i, status: status, keepAlive: keepAlive, now: now)
        case .invalid: fail(i, .invalidResponse, now: now)
        }
    }

    private func complete(_ i: Int, status: Int, keepAlive: Bool, now: Double) {
        if conns[i].start >= measureStart && now <= end {
            tally.histogram.record(UInt64(max(0, (now - conns[i].start) * 1e9)))
            tally.statuses[min(max(status, 0), 599)] += 1
        }
        if keepAlive && conns[i].state == .awaiting { becomeFree(i) } else { reconnect(i, now: now) }
    }

    private func becomeFree(_ i: Int) {
        conns[i].state = .free
        _ = mandate_epoll_mod(epfd, conns[i].fd, Epoll.input, tag(i))
        free.append(i)
    }

    // MARK: Connections

    private func connect(_ i: Int, now: Double) {
        conns[i].generation &+= 1
        conns[i].sentAt = now
        let fd = socket(Int32(address.ss_family), Socket.stream | Socket.nonblocking, 0)
        guard fd >= 0 else { retryLater(i, now: now); tally.failures[ConnectionFailure.connect.rawValue] += 1; return }
        _ = mandate_set_nodelay(fd)
        conns[i].fd = fd
        var addr = address
        let len = socklen_t(address.ss_family == sa_family_t(AF_INET6) ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, len) } }
        if rc == 0 {
            _ = mandate_epoll_add(epfd, fd, Epoll.input, tag(i))
            conns[i].state = .free
            free.append(i)
        } else if errno == EINPROGRESS {
            conns[i].state = .connecting
            _ = mandate_epoll_add(epfd, fd, Epoll.input | Epoll.output, tag(i))
        } else {
            fail(i, .connect, now: now)
        }
    }

    private func closeConnection(_ i: Int) {
        if conns[i].fd >= 0 { close(conns[i].fd) }  // close removes it from the epoll set
        conns[i].fd = -1
        conns[i].state = .closed
        conns[i].out = []
    }

    private func reconnect(_ i: Int, now: Double) {
        closeConnection(i)
        tally.reconnects += 1
        connect(i, now: now)
    }

    private func retryLater(_ i: Int, now: Double) {
        closeConnection(i)
        conns[i].reconnectAt = now + 0.01  // a refused connect returns at once: do not spin
    }

    private func fail(_ i: Int, _ failure: ConnectionFailure, now: Double) {
        if now <= end && (failure == .connect || conns[i].start >= measureStart) { tally.failures[failure.rawValue] += 1 }
        if failure == .connect { retryLater(i, now: now) } else { reconnect(i, now: now) }
    }

    private func sweep(now: Double) {
        for i in conns.indices {
            switch conns[i].state {
            case .closed where conns[i].reconnectAt <= now:
                tally.reconnects += 1
                connect(i, now: now)
            case .sending where now - conns[i].sentAt > plan.timeout, .awaiting where now - conns[i].sentAt > plan.timeout:
                fail(i, .timeout, now: now)
            case .connecting where now - conns[i].sentAt > plan.timeout:
                fail(i, .connect, now: now)
            default: break
            }
        }
    }
}

/// epoll event bits as UInt32.
enum Epoll {
    static let input = UInt32(MANDATE_EPOLLIN)
    static let output = UInt32(MANDATE_EPOLLOUT)
    static let error = UInt32(MANDATE_EPOLLERR)
    static let hangup = UInt32(MANDATE_EPOLLHUP)
}
