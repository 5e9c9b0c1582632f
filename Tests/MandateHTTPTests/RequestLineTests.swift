import Testing
@testable import MandateHTTP

@Suite struct RequestLineTests {
    @Test func parsesSimpleGet() {
        let parts = parse("GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n")
        guard let h = head(parts) else { Issue.record("no head"); return }
        #expect(h.method == "GET")
        #expect(h.target == "/a/b?x=1")
        #expect(h.path == "/a/b")
        #expect(h.minorVersion == 1)
        #expect(h.headers == [HTTPHeader("Host", "h"), HTTPHeader("Accept", "*/*")])
        #expect(h.framing == .none)
        #expect(h.keepAlive)
        #expect(parts.last == .end)
    }

    @Test func ignoresLeadingEmptyLine() {
        #expect(head(parse("\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"))?.target == "/")
    }

    @Test func rejectsInvalidMethodToken() {
        #expect(status(parse("GE(T / HTTP/1.1\r\nHost: h\r\n\r\n")) == 400)
        #expect(status(parse(" GET / HTTP/1.1\r\nHost: h\r\n\r\n")) == 400)
    }

    @Test func rejectsOverlongMethodAsNotImplemented() {
        #expect(status(parse(String(repeating: "A", count: 40) + " / HTTP/1.1\r\nHost: h\r\n\r\n")) == 501)
    }

    @Test func rejectsTargetNotInOriginForm() {
        #expect(status(parse("GET http://example.com/ HTTP/1.1\r\nHost: h\r\n\r\n")) == 400)
        #expect(status(parse("CONNECT example.com:443 HTTP/1.1\r\nHost: h\r\n\r\n")) == 400)
        #expect(status(parse("GET * HTTP/1.1\r\nHost: h\r\n\r\n")) == 400)
    }

    @Test func allowsAsteriskFormForOptions() {
        #expect(head(parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"))?.target == "*")
    }

    @Test func rejectsDoubleSpaceInRequestLine() {
        #expect(status(parse("GET  / HTTP/1.1\r\nHost: h\r\n\r\n")) == 400)
        #expect(status(parse("GET / HTTP/1.1 \r\nHost: h\r\n\r\n")) == 400)
    }

    @Test func rejectsControlBytesInTarget() {
        #expect(status(parse("GET /a\u{01}b HTTP/1.1\r\nHost: h\r\n\r\n")) == 400)
        #expect(status(parse("GET /a\u{7F} HTTP/1.1\r\nHost: h\r\n\r\n")) == 400)
    }

    /// RFC 9112 §3.2: a fragment is never sent in a request-target.
    @Test func rejectsFragmentInTarget() {
        #expect(status(parse("GET /invoices/4#2 HTTP/1.1\r\nHost: h\r\n\r\n")) == 400)
    }

    @Test func rejectsMalformedVersion() {
        #expect(status(parse("GET / HTTP/1\r\nHost: h\r\n\r\n")) == 400)
        #expect(status(parse("GET / http/1.1\r\nHost: h\r\n\r\n")) == 400)
    }

    @Test func rejectsUnsupportedVersionWith505() {
        #expect(status(parse("GET / HTTP/2.0\r\nHost: h\r\n\r\n")) == 505)
        #expect(status(parse("GET / HTTP/0.9\r\n\r\n")) == 505)
    }

    @Test func rejectsLongURIWith414() {
        let limits = HTTPParserLimits(maxURILength: 100)
        #expect(status(parse("GET /" + String(repeating: "a", count: 100) + " HTTP/1.1\r\nHost: h\r\n\r\n", limits: limits)) == 414)
        #expect(head(parse("GET /" + String(repeating: "a", count: 99) + " HTTP/1.1\r\nHost: h\r\n\r\n", limits: limits)) != nil)
    }

    @Test func rejectsEndlessRequestLineWith414BeforeItEnds() {
        let limits = HTTPParserLimits(maxURILength: 100)
        #expect(status(parse("GET /" + String(repeating: "a", count: 500), limits: limits)) == 414)
    }
}
