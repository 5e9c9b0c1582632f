import CCurl
import Glibc
import CMandateShim
import MandateCore
import MandateHTTP

/// A small upstream for demos and tests. Blocking sockets, a thread per connection: simple, not fast.
///
/// - any path: 200 JSON `{"method","path","headers":{…},"body_bytes":N}` (header names lowercased)
/// - `/events`: three Server-Sent Events, 300 ms apart, chunked
/// - `/status/NNN`: that status
/// - `/bytes/N`: N bytes of `x`, with Content-Length (for backpressure tests)
public final class DemoUpstream: @unchecked Sendable {  // the listen fd is fixed after init
    public let port: Int
    private let fd: Int32

    public init(host: String = "127.0.0.1", port: Int = 9000) throws {
        signal(SIGPIPE, SIG_IGN)
        fd = mandate_listen_socket(host, Int32(port), 0, 512)
        guard fd >= 0 else { throw ServerError("demo upstream \(host):\(port): cannot bind (errno \(errno))") }
        _ = mandate_set_blocking(fd)
        self.port = Int(mandate_local_port(fd))
    }

    /// Accepts until `stop()`.
    public func run() {
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 {
                if errno == EINTR { continue }
                break
            }
            pthread_detach(startThread { Self.serve(c) })
        }
        close(fd)
    }

    public func stop() { shutdown(fd, Int32(MANDATE_SHUT_RDWR)) }

    private static func serve(_ c: Int32) {
        defer { close(c) }
        var parser = HTTPRequestParser(limits: HTTPParserLimits(maxBodySize: 1 << 30))
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        var head: HTTPRequestHead?
        var bodyBytes = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { read(c, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            let keepGoing = buffer.withUnsafeBytes { raw -> Bool in
                var offset = 0
                while true {
                    let (event, used) = parser.parse(UnsafeRawBufferPointer(rebasing: raw[offset ..< n]))
                    offset += used
                    switch event {
                    case nil: return true
                    case .head(let h)?:
                        head = h; bodyBytes = 0
                        // Answers before reading the body (tests: an upstream that answers early).
                        if h.path == "/early" { respond(c, h, 0) }
                    case .body(_, let count)?: bodyBytes += count
                    case .end?:
                        guard let h = head else { return false }
                        if h.path != "/early" { respond(c, h, bodyBytes) }
                        if !h.keepAlive { return false }
                        // A keep-alive answer, then the upstream's own idle close (tests).
                        if h.path == "/hangup" { usleep(50_000); return false }
                    case .error(let e)?:
                        var out: [UInt8] = []
                        HTTPResponseWriter.appendHead(status: e.status, headers: [HTTPHeader("Content-Length", "0"),
                                                      HTTPHeader("Connection", "close")], to: &out)
                        writeAll(c, out)
                        return false
                    }
                }
            }
            if !keepGoing { return }
        }
    }

    private static func respond(_ c: Int32, _ h: HTTPRequestHead, _ bodyBytes: Int) {
        var out: [UInt8] = []
        let path = h.path
        if path == "/events" {
            HTTPResponseWriter.appendHead(status: 200, headers: [
                HTTPHeader("Content-Type", "text/event-stream"), HTTPHeader("Cache-Control", "no-cache"),
                HTTPHeader("Transfer-Encoding", "chunked"),
            ], to: &out)
            writeAll(c, out)
            for i in 1 ... 3 {
                if i > 1 { usleep(300_000) }
                out.removeAll()
                Array("data: \(i)\n\n".utf8).withUnsafeBytes { HTTPResponseWriter.appendChunk($0, to: &out) }
                writeAll(c, out)
            }
            out.removeAll()
            HTTPResponseWriter.appendLastChunk(to: &out)
            writeAll(c, out)
            return
        }
        if path.hasPrefix("/bytes/"), let n = Int(path.dropFirst(7)), n >= 0 {
            HTTPResponseWriter.appendHead(status: 200, headers: [HTTPHeader("Content-Type", "application/octet-stream"),
                                                                 HTTPHeader("Content-Length", String(n))], to: &out)
            writeAll(c, out)
            let block = [UInt8](repeating: 0x78, count: 64 << 10)
            var left = h.method == "HEAD" ? 0 : n
            while left > 0 {
                writeAll(c, left >= block.count ? block : Array(block[0 ..< left]))
                left -= min(left, block.count)
            }
            return
        }
        var status = 200
        if path.hasPrefix("/status/"), let s = Int(path.dropFirst(8)), (100 ... 599).contains(s) { status = s }
        var json = "{\"method\":"
        JSONText.appendString(h.method, to: &json)
        json += ",\"path\":"
        JSONText.appendString(h.target, to: &json)
        json += ",\"headers\":{"
        var seen: [(String, String)] = []
        for field in h.headers {
            let name = String(field.name.lowercased())
            if let i = seen.firstIndex(where: { $0.0 == name }) { seen[i].1 += ", " + field.value }
            else { seen.append((name, field.value)) }
        }
        for (i, (name, value)) in seen.enumerated() {
            if i > 0 { json += "," }
            JSONText.appendString(name, to: &json)
            json += ":"
            JSONText.appendString(value, to: &json)
        }
        json += "},\"body_bytes\":\(bodyBytes)}\n"
        let noBody = status == 204 || status == 304 || status < 200
        var fields = [HTTPHeader("Content-Type", "application/json")]
        if !noBody { fields.append(HTTPHeader("Content-Length", String(json.utf8.count))) }
        if !h.keepAlive { fields.append(HTTPHeader("Connection", "close")) }
        HTTPResponseWriter.appendHead(status: status, headers: fields, to: &out)
        if !noBody && h.method != "HEAD" { out.append(contentsOf: json.utf8) }
        writeAll(c, out)
    }

    private static func writeAll(_ c: Int32, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = send(c, raw.baseAddress! + off, raw.count - off, Int32(MANDATE_MSG_NOSIGNAL))
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                off += n
            }
        }
    }
}
