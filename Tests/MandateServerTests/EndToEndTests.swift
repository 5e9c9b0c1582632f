import Glibc
import Testing
import MandateCore
import MandateHTTP
@testable import MandateServer

/// Forwards everything except `/deny…`; drops Authorization and Connection, adds a principal header.
struct TestGate: RequestGate {
    func admit(_ head: HTTPRequestHead, peer: Peer, requestID: String, now: Int64) -> Admission {
        let facts = AuditFacts(principal: "did:key:test", agent: "agent-1", chain: ["did:key:test", "agent-1"], route: "all")
        if head.path.hasPrefix("/busy") {
            var d = Denial(.temporarilyUnavailable, "replay cache is full; retry shortly")
            d.retryAfter = 1
            return .refuse(d, facts)
        }
        if head.path.hasPrefix("/deny") {
            return .refuse(Denial(.invalidToken, "token rejected"), facts)
        }
        var headers = head.headers.filter { h in
            !["authorization", "connection", "keep-alive"].contains(h.name.lowercased())
        }
        headers.append(HTTPHeader("Mandate-Principal", "did:key:test"))
        // A gate that let a line break into a value (the parser never would): it must not reach the upstream.
        if head.path.hasPrefix("/inject") { headers.append(HTTPHeader("Mandate-Agent", "a\r\nX-Injected: 1")) }
        return .forward(ForwardPlan(target: head.target, headers: headers, facts: facts))
    }
}

/// A proxy and a demo upstream on ephemeral loopback ports, stopped at the end.
final class Fixture {
    let upstream: DemoUpstream
    let proxy: ProxyServer
    let upstreamThread: pthread_t
    let proxyThread: pthread_t
    let logPath: String
    var port: Int { proxy.boundPorts[0] }

    init(upstreamURL: String? = nil, gate: any RequestGate = TestGate(), tweak: (inout ProxyConfig) -> Void = { _ in },
         tuneLoop: (inout LoopSettings) -> Void = { _ in }) throws {
        upstream = try DemoUpstream(host: "127.0.0.1", port: 0)
        var config = ProxyConfig()
        config.listen = [.init(host: "127.0.0.1", port: 0)]
        config.workers = 1
        config.upstream = upstreamURL ?? "http://127.0.0.1:\(upstream.port)"
        logPath = "/tmp/mandate-server-test-\(getpid())-\(UInt32.random(in: 0 ... .max)).log"
        config.accessLog = logPath
        tweak(&config)
        proxy = try ProxyServer(config: config, gate: gate, tune: tuneLoop)
        let u = upstream, p = proxy
        upstreamThread = startThread { u.run() }
        proxyThread = startThread { try? p.run() }
    }

    func shutdown() -> String {
        proxy.stop()
        pthread_join(proxyThread, nil)
        upstream.stop()
        pthread_join(upstreamThread, nil)
        let log = readFile(logPath)
        unlink(logPath)
        return log
    }
}

func readFile(_ path: String) -> String {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return "" }
    defer { close(fd) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        out += buf[0 ..< n]
    }
    return String(decoding: out, as: UTF8.self)
}

/// A blocking loopback client.
final class Client {
    let fd: Int32

    init(port: Int) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    deinit { close(fd) }

    func send(_ s: String) { sendBytes(Array(s.utf8)) }

    func sendBytes(_ b: [UInt8]) {
        b.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = Glibc.send(fd, raw.baseAddress! + off, raw.count - off, Int32(MSG_NOSIGNAL))
                if n <= 0 { return }
                off += n
            }
        }
    }

    /// One read; empty on EOF or timeout.
    func readSome() -> String {
        var buf = [UInt8](repeating: 0, count: 65536)
        let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        return n > 0 ? String(decoding: buf[0 ..< n], as: UTF8.self) : ""
    }

    /// Everything until the server closes (or 5 s pass).
    func readToEnd() -> String {
        var out = ""
        while true {
            let s = readSome()
            if s.isEmpty { return out }
            out += s
        }
    }

    /// Everything until EOF; nil when the server kept the connection open past the 5 s timeout.
    func readUntilClosed() -> String? {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n == 0 { return String(decoding: out, as: UTF8.self) }
            if n < 0 { return nil }
            out += buf[0 ..< n]
        }
    }

    /// Reads until `marker` has been seen `count` times.
    func read(until marker: String, count: Int = 1) -> String {
        var out = ""
        while out.components(marker) < count {
            let s = readSome()
            if s.isEmpty { break }
            out += s
        }
        return out
    }
}

extension String {
    func components(_ marker: String) -> Int {
        var n = 0
        var rest = Substring(self)
        while let r = rest.firstRange(of: marker) { n += 1; rest = rest[r.upperBound...] }
        return n
    }
}

/// `first` went out keep-alive, and the same connection then answered `GET /next`.
func expectKeptAlive(_ first: String, then second: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(first.hasPrefix("HTTP/1.1 200 OK\r\n"), sourceLocation: sourceLocation)
    #expect(!first.contains("Connection: close"), sourceLocation: sourceLocation)
    #expect(second.hasPrefix("HTTP/1.1 200 OK\r\n"), "the keep-alive connection was closed: \(second)",
            sourceLocation: sourceLocation)
    #expect(second.contains("\"path\":\"/next\""), sourceLocation: sourceLocation)
}

@Suite(.serialized) struct EndToEndTests {
    @Test func forwardsRequestAndRelaysResponse() throws {
        let f = try Fixture()
        let c = Client(port: f.port)
        c.send("GET /hello?x=1 HTTP/1.1\r\nHost: proxy\r\nAuthorization: DPoP t\r\nX-Custom: v\r\nConnection: close\r\n\r\n")
        let response = c.readToEnd()
        let log = f.shutdown()
        #expect(response.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(response.contains("Mandate-Request-Id: "))
        #expect(response.contains("\"path\":\"/hello?x=1\""))
        #expect(response.contains("\"mandate-principal\":\"did:key:test\""))
        #expect(response.contains("\"x-custom\":\"v\""))
        #expect(response.contains("\"host\":\"proxy\""))
        // Exactly the plan's fields: curl adds neither Accept nor Expect, credentials stay out.
        #expect(!response.contains("\"accept\""))
        #expect(!response.contains("\"expect\""))
        #expect(!response.contains("\"authorization\""))
        #expect(log.contains("\"decision\":\"forward\""))
        #expect(log.contains("\"path\":\"/hello\""))
        #expect(log.contains("\"principal\":\"did:key:test\""))
        #expect(log.contains("\"chain\":[\"did:key:test\",\"agent-1\"]"))
        #expect(log.contains("\"status\":200"))
    }

    @Test func prefixesUpstreamPath() throws {
        let upstream = try DemoUpstream(host: "127.0.0.1", port: 0)
        let upstreamPort = upstream.port
        let ut = startThread { upstream.run() }
        let f = try Fixture(upstreamURL: "http://127.0.0.1:\(upstreamPort)/base/")
        let c = Client(port: f.port)
        c.send("GET /p?q HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        let response = c.readToEnd()
        _ = f.shutdown()
        upstream.stop(); pthread_join(ut, nil)
        #expect(response.contains("\"path\":\"/base/p?q\""))
    }

    @Test func streamsContentLengthBody() throws {
        let f = try Fixture()
        let c = Client(port: f.port)
        let body = [UInt8](repeating: 0x61, count: 300_000)
        c.send("POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n")
        c.sendBytes(body)
        let response = c.readToEnd()
        _ = f.shutdown()
        #expect(response.hasPrefix("HTTP/1.1 200 OK"))
        #expect(response.contains("\"method\":\"POST\""))
        #expect(response.contains("\"body_bytes\":300000"))
        #expect(response.contains("\"content-length\":\"300000\""))
    }

    @Test func streamsChunkedBodyAsChunked() throws {
        let f = try Fixture()
        let c = Client(port: f.port)
        c.send("PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n")
        usleep(50_000)
        c.send("6;ext=1\r\n world\r\n0\r\n\r\n")
        let response = c.readToEnd()
        _ = f.shutdown()
        #expect(response.contains("\"method\":\"PUT\""))
        #expect(response.contains("\"body_bytes\":11"))
        #expect(response.contains("\"transfer-encoding\":\"chunked\""))
    }

    @Test func answers100ContinueBeforeBody() throws {
        let f = try Fixture()
        let c = Client(port: f.port)
        c.send("POST /e HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        let interim = c.read(until: "\r\n\r\n")
        c.send("abc")
        let response = c.readToEnd()
        _ = f.shutdown()
        #expect(interim.hasPrefix("HTTP/1.1 100 Continue\r\n\r\n"))
        #expect(response.contains("\"body_bytes\":3"))
    }

    @Test func refusesWithDenialJSONAndChallenge() throws {
        let f = try Fixture()
        let c = Client(port: f.port)
        c.send("GET /deny HTTP/1.1\r\nHost: h\r\n\r\nGET /after HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        let response = c.readToEnd()
        let log = f.shutdown()
        #expect(response.hasPrefix("HTTP/1.1 401 Unauthorized\r\n"))
        #expect(response.contains("Content-Type: application/json\r\n"))
        #expect(response.contains("WWW-Authenticate: DPoP error=\"invalid_token\""))
        #expect(response.contains("{\"error\":\"invalid_token\",\"error_description\":\"token rejected\",\"request_id\":\""))
        // The connection stays usable: the pipelined request after the refusal is forwarded.
        #expect(response.contains("\"path\":\"/after\""))
        #expect(log.contains("\"decision\":\"refuse\",\"reason\":\"invalid_token\""))
    }

    /// A refusal of a bodiless request with Connection: close (or HTTP/1.0) closes the connection;
    /// it once stayed open forever, and enough of them locked valid clients out.
    @Test func closesAfterRefusingBodilessRequestThatAskedToClose() throws {
        let f = try Fixture()
        let c = Client(port: f.port)
        c.send("GET /deny HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        let r1 = c.readUntilClosed()
        let c2 = Client(port: f.port)
        c2.send("GET /deny HTTP/1.0\r\n\r\n")
        let r2 = c2.readUntilClosed()
        _ = f.shutdown()
        #expect(r1?.hasPrefix("HTTP/1.1 401 ") == true)
        #expect(r2?.hasPrefix("HTTP/1.1 401 ") == true)
    }

    /// With a body, curl's UPLOAD means PUT unless told the method: a GET once arrived as PUT.
    @Test func forwardsGETWithBodyAsGET() throws {
        let f = try Fixture()
        let c = Client(port: f.port)
        c.send("GET /g HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
        let a = c.readToEnd()
        let c2 = Client(port: f.port)
        c2.send("GET /g HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        let b = c2.readToEnd()
        _ = f.shutdown()
        for r in [a, b] {
            #expect(r.contains("\"method\":\"GET\""))
            #expect(r.contains("\"body_bytes\":5"))
        }
    }

    /// Curl resends on a dead reused connection unless it would have to rewind a body it cannot:
    /// a bodiless POST is sent with an empty body so that it is never retried.
    @Test func forwardsBodilessPOSTWithEmptyBody() throws {
        let f = try Fixture()
        let c = Client(port: f.port)
        c.send("POST /p HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        let r = c.readToEnd()
        _ = f.shutdown()
        #expect(r.contains("\"method\":\"POST\""))
        #expect(r.contains("\"body_bytes\":0"))
    }

    /// A client pipelining refusals it never reads once grew the proxy's memory without bound:
    /// now the proxy stops reading until the client reads, so the client's writes stall.
    @Test func stopsReadingFromAClientThatDoesNotReadItsAnswers() throws {
        let f = try Fixture()
        let c = Client(port: f.port)
        let request = Array("GET /deny HTTP/1.1\r\nHost: a\r\n\r\n".utf8)
        let batch = Array([[UInt8]](repeating: request, count: 2048).joined())
        var sent = 0
        var stalledSince: Double? = nil
        let limit = 48 << 20
        while sent < limit {
            let n = batch.withUnsafeBytes { Glibc.send(c.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 { sent += n; stalledSince = nil; continue }
            let t = monotonicNow()
            if let s = stalledSince { if t - s > 1 { break } } else { stalledSince = t }
            usleep(10_000)
        }
        _ = f.shutdown()
        #expect(sent < limit, "the proxy kept reading \(sent) bytes from a client that reads nothing")
    }

    @Test func sendsRetryAfterWithA503() throws {
        let f = try Fixture()
        let c = Client(port: f.port)
        c.send("GET /busy HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        let r = c.readToEnd()
        _ = f.shutdown()
        #expect(r.hasPrefix("HTTP/1.1 503 "))
        #expect(r.contains("Retry-After: 1\r\n"))
    }

    /// SO_REUSEPORT would let a second process join the port and take half the traffic.
    @Test func refusesToShareAPortWithAnotherServer() throws {
        let f = try Fixture()
        var config = ProxyConfig()
        config.listen = [.init(host: "127.0.0.1", port: f.port)]
        config.workers = 1
        config.accessLog = "off"
        #expect(throws: ServerError.self) { _ = try ProxyServer(config: config, gate: TestGate()) }
        _ = f.shutdown()
    }

    @Test func drainsSmallBodyOfRefusedRequest() throws {
        let f = try Fixture()
        let c = Client(port: f.port)
        c.send("POST /deny HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET /next HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        let response = c.readToEnd()
        _ = f.shutdown()
        #expect(response.hasPrefix("HTTP/1.1 401"))
        #expect(response.contains("\"path\":\"/next\""))
    }

    @Test func closesAfterRefusingLargeBody() throws {
        let f = try Fixture()
        let c = Client(port: f.port)
        c.send("POST /deny HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\n" + String(repeating: "x", count: 1000))
        let response = c.readToEnd()
        _ = f.shutdown()
        #expect(response.hasPrefix("HTTP/1.1 401"))
        #expect(response.contains("Connection: close\r\n"))
    }

    @Test func answersParseErrorWithJSONAndCloses() throws {
        let f = try Fixture()
        let c = Client(port: f.port)
        c.send("GET / HTTP/1.1\r\nHost : h\r\n\r\n")
        let response = c.readToEnd()
        let log = f.shutdown()
        #expect(response.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        #expect(response.contains("Connection: close\r\n"))
        #expect(response.contains("\"error\":\"invalid_request\""))
        #expect(log.contains("\"reason\":\"invalid_request\""))
    }

    @Test func answersOversizedHeadersWith431() throws {
        let f = try Fixture { $0.maxHeaderBytes = 1024 }
        let c = Client(port: f.port)
        c.send("GET / HTTP/1.1\r\nHost: h\r\nX: " + String(repeating: "a", count: 2000) + "\r\n\r\n")
        let response = c.readToEnd()
        _ = f.shutdown()
        #expect(response.hasPrefix("HTTP/1.1 431 "))
        #expect(response.contains("\"error\":\"request_header_fields_too_large\""))
    }

    @Test func answersHeaderTimeoutWith408() throws {
        let f = try Fixture { $0.headerTimeout = 0.3 }
        let c = Client(port: f.port)
        c.send("GET / HTTP/1.1\r\nHost: h\r\n")
        let response = c.readToEnd()
        _ = f.shutdown()
        #expect(response.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"))
        #expect(response.contains("\"error\":\"request_timeout\""))
    }

    @Test func closesIdleKeepAliveConnection() throws {
        let f = try Fixture { $0.idleTimeout = 0.3 }
        let c = Client(port: f.port)
        c.send("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n")
        let response = c.readToEnd()  // returns when the idle connection is closed
        _ = f.shutdown()
        #expect(response.hasPrefix("HTTP/1.1 200"))
        #expect(!response.contains("408"))
    }

    /// A request body whose last bytes filled the upstream queue to its high-water mark left the
    /// request unfinished (its end was never parsed while input was held): the answer then closed
    /// the keep-alive connection, without Connection: close, and the client's next request was lost.
    @Test func keepsTheConnectionAfterABodyThatEndsAtTheHighWaterMark() throws {
        let f = try Fixture(tuneLoop: { $0.inputHighWater = 1000 })
        let c = Client(port: f.port)
        let body = String(repeating: "a", count: 1000)
        c.send("POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n" + body)
        let first = c.read(until: "body_bytes")
        usleep(100_000)
        c.send("GET /next HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        let second = c.readToEnd()
        _ = f.shutdown()
        #expect(first.contains("\"body_bytes\":1000"))
        expectKeptAlive(first, then: second)
    }

    /// A HEAD request's body is never sent upstream (curl's NOBODY): it was queued all the same, so
    /// a large one held input at the high-water mark until the answer, which then closed the
    /// keep-alive connection without saying so.
    @Test func dropsTheBodyOfAHEADRequestAndKeepsTheConnection() throws {
        let f = try Fixture(tuneLoop: { $0.inputHighWater = 1000 })
        let c = Client(port: f.port)
        // Behind a slow answer, so that the whole body waits in the socket: it is read in two parts.
        c.send("GET /events HTTP/1.1\r\nHost: h\r\n\r\nHEAD /h HTTP/1.1\r\nHost: h\r\nContent-Length: 70000\r\n\r\n"
               + String(repeating: "a", count: 70000))
        let events = c.read(until: "0\r\n\r\n")
        let first = c.read(until: "\r\n\r\n")
        #expect(events.contains("data: 3"))
        usleep(100_000)
        c.send("GET /next HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        let second = c.readToEnd()
        _ = f.shutdown()
        expectKeptAlive(first, then: second)
        #expect(second.contains("\"method\":\"GET\""))
    }

    /// The upstream answers a HEAD at once (its body is not forwarded): a body still arriving then
    /// made the answer close the keep-alive connection, without Connection: close. It is drained.
    @Test func drainsTheBodyOfAHEADRequestAnsweredBeforeItArrived() throws {
        let f = try Fixture()
        let c = Client(port: f.port)
        c.send("HEAD /h HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n")
        let first = c.read(until: "\r\n\r\n")
        usleep(50_000)
        c.send(String(repeating: "a", count: 5000) + "GET /next HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        let second = c.readToEnd()
        _ = f.shutdown()
        expectKeptAlive(first, then: second)
    }

    /// An upstream that answers before the request body is in: the connection cannot be reused
    /// (the rest of the body is unframed for the next request), and the answer must say so.
    @Test func saysCloseWhenTheUpstreamAnswersBeforeTheBody() throws {
        let f = try Fixture()
        let c = Client(port: f.port)
        c.send("POST /early HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n")
        let head = c.read(until: "\r\n\r\n")
        c.send(String(repeating: "a", count: 5000))
        let rest = c.readUntilClosed()
        _ = f.shutdown()
        #expect(head.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(head.contains("Connection: close\r\n"))
        #expect(rest != nil, "the connection was not closed")
    }

    @Test func servesPipelinedRequestsInOrder() throws {
        let f = try Fixture()
        let c = Client(port: f.port)
        c.send("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        let response = c.readToEnd()
        _ = f.shutdown()
        let one = response.firstRange(of: "\"path\":\"/1\"")?.lowerBound
        let two = response.firstRange(of: "\"path\":\"/2\"")?.lowerBound
        let three = response.firstRange(of: "\"path\":\"/3\"")?.lowerBound
        #expect(one != nil && two != nil && three != nil)
        if let one, let two, let three { #expect(one < two && two < three) }
    }

    @Test func forgetsAnUpstreamConnectionTheUpstreamClosed() throws {
        // The upstream answers keep-alive, then closes its idle end: the pooled connection reads
        // EOF while no transfer uses it. The loop must stop watching it (not wake on it without
        // end), and the next request goes out on a new connection.
        let f = try Fixture()
        let c = Client(port: f.port)
        c.send("GET /hangup HTTP/1.1\r\nHost: h\r\n\r\n")
        let first = c.read(until: "body_bytes")
        usleep(300_000)
        let before = f.proxy.loopWakeups
        usleep(500_000)
        let wakeups = f.proxy.loopWakeups - before
        c.send("GET /after HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        let second = c.readToEnd()
        _ = f.shutdown()
        #expect(first.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(wakeups < 50, "the loop woke \(wakeups) times in 0.5 s with nothing to do")
        #expect(second.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(second.contains("\"path\":\"/after\""))
    }

    @Test func relaysServerSentEventsAsTheyArrive() throws {
        let f = try Fixture()
        let c = Client(port: f.port)
        c.send("GET /events HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        let first = c.read(until: "data: 1")
        let rest = c.readToEnd()
        _ = f.shutdown()
        #expect(first.contains("Content-Type: text/event-stream"))
        #expect(first.contains("Transfer-Encoding: chunked"))
        // Event 3 is sent 600 ms after event 1; it cannot be in the read that delivered event 1.
        #expect(!first.contains("data: 3"))
        #expect(rest.contains("data: 3"))
        #expect(rest.hasSuffix("0\r\n\r\n"))
    }

    @Test func relaysUpstreamStatus() throws {
        let f = try Fixture()
        let c = Client(port: f.port)
        c.send("GET /status/404 HTTP/1.1\r\nHost: h\r\n\r\nHEAD /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        let response = c.readToEnd()
        _ = f.shutdown()
        #expect(response.hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        #expect(response.contains("HTTP/1.1 200 OK\r\n"))
        // HEAD: the length is relayed but no body follows.
        #expect(response.hasSuffix("\r\n\r\n"))
    }

    /// RFC 9110 §5.5: a field value with CR, LF or NUL could split into two lines upstream; such a
    /// request is never sent.
    @Test func neverSendsAFieldLineThatCouldSplit() throws {
        let f = try Fixture()
        let c = Client(port: f.port)
        c.send("GET /inject HTTP/1.1\r\nHost: h\r\n\r\n")
        let response = c.readToEnd()
        _ = f.shutdown()
        #expect(response.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"))
        #expect(!response.contains("x-injected"))
    }

    @Test func answersUnreachableUpstreamWith502() throws {
        // A port that was just free: nothing listens there.
        let probe = try DemoUpstream(host: "127.0.0.1", port: 0)
        let deadPort = probe.port
        probe.stop(); probe.run()
        let f = try Fixture(upstreamURL: "http://127.0.0.1:\(deadPort)")
        let c = Client(port: f.port)
        c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        let response = c.readToEnd()
        let log = f.shutdown()
        #expect(response.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"))
        #expect(response.contains("\"error\":\"bad_gateway\""))
        #expect(log.contains("\"reason\":\"bad_gateway\""))
    }

    @Test func servesHTTP10WithoutKeepAlive() throws {
        let f = try Fixture()
        let c = Client(port: f.port)
        c.send("GET /old HTTP/1.0\r\n\r\n")
        let response = c.readToEnd()
        _ = f.shutdown()
        #expect(response.hasPrefix("HTTP/1.1 200 OK"))
        #expect(response.contains("Connection: close\r\n"))
        #expect(response.contains("\"path\":\"/old\""))
    }

    @Test func survivesClientDisconnectMidStream() throws {
        let f = try Fixture()
        do {
            let c = Client(port: f.port)
            c.send("GET /events HTTP/1.1\r\nHost: h\r\n\r\n")
            _ = c.read(until: "data: 1")
        }  // closed mid-stream
        usleep(100_000)
        let c2 = Client(port: f.port)
        c2.send("GET /ok HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        let response = c2.readToEnd()
        let log = f.shutdown()
        #expect(response.contains("\"path\":\"/ok\""))
        #expect(log.contains("\"path\":\"/events\""))
    }
}

@Suite(.serialized) struct BackpressureTests {
    @Test func relaysLargeResponseToSlowReader() throws {
        let f = try Fixture()
        let c = Client(port: f.port)
        let size = 8 << 20
        c.send("GET /bytes/\(size) HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        usleep(300_000)  // let the proxy's output and curl's pause kick in
        var total = 0
        var head = ""
        while true {
            let s = c.readSome()
            if s.isEmpty { break }
            if head.isEmpty { head = String(s.prefix(200)) }
            total += s.utf8.count
        }
        _ = f.shutdown()
        #expect(head.hasPrefix("HTTP/1.1 200 OK"))
        #expect(head.contains("Content-Length: \(size)"))
        #expect(total > size)
        #expect(total < size + 400)
    }

    @Test func keepsServingWhileSlowClientsHoldConnections() throws {
        let f = try Fixture()
        let slow = (0 ..< 200).map { _ in Client(port: f.port) }
        for s in slow { s.send("GET / HTTP/1.1\r\nHo") }
        let c = Client(port: f.port)
        c.send("GET /fine HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        let response = c.readToEnd()
        _ = f.shutdown()
        #expect(response.contains("\"path\":\"/fine\""))
        _ = slow.count
    }
}

@Suite(.serialized) struct ExpectContinueTests {
    @Test func closesAfterRefusingRequestThatAwaitsContinue() throws {
        let f = try Fixture()
        let c = Client(port: f.port)
        c.send("POST /deny HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        let response = c.readToEnd()
        _ = f.shutdown()
        #expect(response.hasPrefix("HTTP/1.1 401"))
        #expect(!response.contains("100 Continue"))
        #expect(response.contains("Connection: close\r\n"))
    }
}
