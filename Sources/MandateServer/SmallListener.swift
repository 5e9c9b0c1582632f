import Glibc
import CMandateShim
import MandateHTTP
import Synchronization

/// The low-traffic side listeners (admin, approvals): blocking sockets, a thread per
/// connection, at most `maxConnections` at once, keep-alive, and each request complete within
/// 10 s of its first byte (a receive timeout alone lets a byte every 9 s hold a place for ever).
/// The owner answers whole requests; this only frames them.
final class SmallListener: @unchecked Sendable {  // the listen fd is fixed after init
    struct Reply {
        var status: Int
        var fields: [(String, String)]
        var body: [UInt8]
        /// HEAD: the fields only.
        var omitBody = false
    }

    let port: Int
    private let fd: Int32
    private let maxConnections: Int
    private let limits: HTTPParserLimits
    private let answer: @Sendable (HTTPRequestHead, [UInt8]) -> Reply
    private let refuse: @Sendable (HTTPParseError) -> Reply
    private let active = Atomic<Int>(0)
    static let requestTimeout = 10.0

    /// `what` names the directive in errors; `refuse` answers a request the parser refused
    /// (the connection then closes).
    init(host: String, port: Int, what: String, maxConnections: Int, maxBody: Int,
         answer: @escaping @Sendable (HTTPRequestHead, [UInt8]) -> Reply, refuse: @escaping @Sendable (HTTPParseError) -> Reply) throws {
        if port != 0 && mandate_port_in_use(host, Int32(port)) == 1 {
            throw ServerError("\(what) \(host):\(port): address already in use")
        }
        fd = mandate_listen_socket(host, Int32(port), 0, 64)
        guard fd >= 0 else { throw ServerError("\(what) \(host):\(port): cannot bind (errno \(errno))") }
        _ = mandate_set_blocking(fd)
        self.port = Int(mandate_local_port(fd))
        self.maxConnections = maxConnections
        limits = HTTPParserLimits(maxURILength: 2048, maxHeaderBytes: 16 << 10, maxHeaderCount: 50, maxBodySize: maxBody)
        self.answer = answer; self.refuse = refuse
    }

    func run() {
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 {
                if errno == EINTR { continue }
                break
            }
            guard active.add(1, ordering: .relaxed).newValue <= maxConnections else {
                active.subtract(1, ordering: .relaxed)
                close(c)
                continue
            }
            pthread_detach(startThread { [self] in
                serve(c)
                active.subtract(1, ordering: .relaxed)
            })
        }
        close(fd)
    }

    /// `run()` on a thread of its own.
    func start() { pthread_detach(startThread { [self] in run() }) }

    func stop() { shutdown(fd, Int32(MANDATE_SHUT_RDWR)) }

    private func serve(_ c: Int32) {
        defer { close(c) }
        var parser = HTTPRequestParser(limits: limits)
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        var head: HTTPRequestHead?
        var body: [UInt8] = []
        var deadline: Double?
        while true {
            let left = deadline.map { $0 - monotonicNow() } ?? Self.requestTimeout
            if left <= 0 { return }
            let us = max(1000, Int(left * 1e6))  // 0 would mean no timeout
            var tv = timeval(tv_sec: us / 1_000_000, tv_usec: us % 1_000_000)
            _ = setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            let n = buffer.withUnsafeMutableBytes { read(c, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            if deadline == nil { deadline = monotonicNow() + Self.requestTimeout }
            var keep = true
            buffer.withUnsafeBytes { raw in
                var offset = 0
                while keep {
                    let (event, used) = parser.parse(UnsafeRawBufferPointer(rebasing: raw[offset ..< n]))
                    defer { offset += used }
                    switch event {
                    case nil: return
                    case .head(let h)?: head = h; body = []
                    case .body(let o, let count)?: body += raw[(offset + o) ..< (offset + o + count)]
                    case .end?:
                        if let h = head {
                            keep = h.keepAlive
                            write(c, answer(h, body), keepAlive: keep)
                        }
                        head = nil; body = []; deadline = nil
                    case .error(let e)?:
                        write(c, refuse(e), keepAlive: false)
                        keep = false
                    }
                }
            }
            if !keep { return }
        }
    }

    private func write(_ c: Int32, _ r: Reply, keepAlive: Bool) {
        var out: [UInt8] = []
        HTTPResponseWriter.appendStatusLine(r.status, to: &out)
        for (k, v) in r.fields { HTTPResponseWriter.appendField(k, v, to: &out) }
        if !keepAlive { HTTPResponseWriter.appendField("Connection", "close", to: &out) }
        HTTPResponseWriter.appendField("Content-Length", r.body.count, to: &out)
        out += [0x0D, 0x0A]
        if !r.omitBody { out += r.body }
        var off = 0
        while off < out.count {
            let n = out.withUnsafeBytes { send(c, $0.baseAddress! + off, $0.count - off, Int32(MANDATE_MSG_NOSIGNAL)) }
            if n <= 0 { return }
            off += n
        }
    }
}
