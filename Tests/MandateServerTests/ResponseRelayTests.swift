import Testing
@testable import MandateServer

@Suite struct ResponseRelayTests {
    func relay(_ lines: [String], head: Bool = false, minor: Int = 1, keepAlive: Bool = true) -> (ResponseRelay, String) {
        var r = ResponseRelay(requestIsHEAD: head, clientMinorVersion: minor)
        for l in lines { _ = Array(l.utf8).withUnsafeBytes { r.consume($0) } }
        var out: [UInt8] = []
        if r.isComplete { r.appendHead(requestID: "rid", keepAlive: keepAlive, to: &out) }
        return (r, String(decoding: out, as: UTF8.self))
    }

    @Test func dropsHopByHopFields() {
        let (r, out) = relay(["HTTP/1.1 200 OK\r\n", "Connection: keep-alive, X-Secret\r\n", "Keep-Alive: timeout=5\r\n",
                              "X-Secret: 1\r\n", "Proxy-Connection: x\r\n", "TE: trailers\r\n", "Trailer: X\r\n",
                              "Upgrade: h2c\r\n", "Content-Type: text/plain\r\n", "Content-Length: 3\r\n", "\r\n"])
        #expect(r.framing == .length)
        #expect(out == "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nMandate-Request-Id: rid\r\n\r\n")
    }

    @Test func rechunksBodyOfUnknownLength() {
        let (r, out) = relay(["HTTP/1.1 200 OK\r\n", "Transfer-Encoding: chunked\r\n", "Content-Type: text/event-stream\r\n", "\r\n"])
        #expect(r.framing == .chunked)
        #expect(out == "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nMandate-Request-Id: rid\r\n\r\n")
    }

    @Test func closeDelimitsUnknownLengthForHTTP10Client() {
        let (r, out) = relay(["HTTP/1.1 200 OK\r\n", "\r\n"], minor: 0)
        #expect(r.framing == .closeDelimited)
        #expect(out.contains("Connection: close\r\n"))
    }

    @Test func skipsInterimResponses() {
        let (r, _) = relay(["HTTP/1.1 100 Continue\r\n", "\r\n", "HTTP/1.1 201 Created\r\n", "Content-Length: 0\r\n", "\r\n"])
        #expect(r.isComplete)
        #expect(r.status == 201)
    }

    @Test func sendsNoBodyForHeadAnd204And304() {
        #expect(relay(["HTTP/1.1 200 OK\r\n", "Content-Length: 10\r\n", "\r\n"], head: true).0.framing == .none)
        #expect(relay(["HTTP/1.1 204 No Content\r\n", "\r\n"]).0.framing == .none)
        #expect(relay(["HTTP/1.1 304 Not Modified\r\n", "\r\n"]).0.framing == .none)
    }

    @Test func marksConnectionCloseWhenNotKeepingAlive() {
        #expect(relay(["HTTP/1.1 200 OK\r\n", "Content-Length: 0\r\n", "\r\n"], keepAlive: false).1.contains("Connection: close\r\n"))
    }

    @Test func rejectsMalformedStatusLine() {
        var r = ResponseRelay(requestIsHEAD: false, clientMinorVersion: 1)
        #expect(Array("garbage\r\n".utf8).withUnsafeBytes { r.consume($0) } == .invalid)
    }

    @Test func ignoresTrailersAfterHead() {
        var (r, _) = relay(["HTTP/1.1 200 OK\r\n", "Transfer-Encoding: chunked\r\n", "\r\n"])
        #expect(Array("X-Trailer: 1\r\n".utf8).withUnsafeBytes { r.consume($0) } == .complete)
    }

    func progress(_ lines: [String]) -> ResponseRelay.Progress {
        var r = ResponseRelay(requestIsHEAD: false, clientMinorVersion: 1)
        var last = ResponseRelay.Progress.more
        for l in lines {
            last = Array(l.utf8).withUnsafeBytes { r.consume($0) }
            if last == .invalid { return last }
        }
        return last
    }

    /// RFC 9110 §8.6: a proxy must not forward differing Content-Length values (response splitting).
    @Test func rejectsConflictingOrInvalidUpstreamContentLength() {
        #expect(progress(["HTTP/1.1 200 OK\r\n", "Content-Length: 2\r\n", "Content-Length: 36\r\n", "\r\n"]) == .invalid)
        #expect(progress(["HTTP/1.1 200 OK\r\n", "Content-Length: 2, 2\r\n", "\r\n"]) == .invalid)
        #expect(progress(["HTTP/1.1 200 OK\r\n", "Content-Length: +2\r\n", "\r\n"]) == .invalid)
        #expect(progress(["HTTP/1.1 200 OK\r\n", "Content-Length: 2\r\n", "\r\n"]) == .complete)
    }

    /// RFC 9112 §5: what a lenient client could read as another field or another framing.
    @Test func rejectsMalformedUpstreamFieldLines() {
        for bad in ["X-A: a\rSet-Cookie: evil=1\r\n", " Set-Cookie: evil=1\r\n", "Transfer-Encoding : chunked\r\n",
                    "mandate-request-id : forged\r\n", "no colon here\r\n", "X-A: a\u{0}b\r\n"] {
            #expect(progress(["HTTP/1.1 200 OK\r\n", "X-Ok: 1\r\n", bad, "\r\n"]) == .invalid, "\(bad)")
        }
    }

    @Test func rejectsStatusOutsideTheRegistry() {
        #expect(progress(["HTTP/1.1 999 Odd\r\n"]) == .invalid)
        #expect(progress(["HTTP/1.1 600 Odd\r\n"]) == .invalid)
    }

    /// RFC 9112 §9.3: an HTTP/1.0 client keeps the connection only when told so.
    @Test func tellsHTTP10ClientsTheConnectionIsKeptAlive() {
        let (_, out) = relay(["HTTP/1.1 200 OK\r\n", "Content-Length: 0\r\n", "\r\n"], minor: 0)
        #expect(out.contains("Connection: keep-alive\r\n"))
    }
}
