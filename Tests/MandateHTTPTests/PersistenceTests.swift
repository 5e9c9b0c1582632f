import Testing
@testable import MandateHTTP

@Suite struct PersistenceTests {
    @Test func keepsHTTP11AliveByDefault() {
        #expect(head(parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n"))?.keepAlive == true)
    }

    @Test func closesHTTP11OnConnectionClose() {
        #expect(head(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, Close\r\n\r\n"))?.keepAlive == false)
    }

    @Test func closesHTTP10UnlessKeepAlive() {
        #expect(head(parse("GET / HTTP/1.0\r\n\r\n"))?.keepAlive == false)
        #expect(head(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))?.keepAlive == true)
        #expect(head(parse("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"))?.keepAlive == false)
    }

    @Test func parsesPipelinedRequests() {
        let parts = parse("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nabGET /3 HTTP/1.1\r\nHost: h\r\n\r\n")
        let targets = parts.compactMap { if case .head(let h) = $0 { h.target } else { nil } }
        #expect(targets == ["/1", "/2", "/3"])
        #expect(parts.filter { $0 == .end }.count == 3)
        #expect(parts.contains(.body(bytes("ab"))))
    }

    @Test func parsesByteAtATime() {
        let input = "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n"
            + "PUT /y HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nwxyz"
        #expect(parseByteAtATime(input) == parse(input))
        let parts = parseByteAtATime(input)
        #expect(parts.contains(.body(bytes("abcde"))))
        #expect(parts.contains(.body(bytes("wxyz"))))
        #expect(parts.filter { $0 == .end }.count == 2)
    }

    @Test func detectsErrorsByteAtATime() {
        #expect(status(parseByteAtATime("GET / HTTP/1.1\r\nHost: h\nX: 1\r\n\r\n")) == 400)
        #expect(status(parseByteAtATime("GET / HTTP/1.1\r\nHost : h\r\n\r\n")) == 400)
    }

    @Test func staysFailedAfterError() {
        var p = HTTPRequestParser()
        _ = p.feed(bytes("GET / HTTP/1.1\r\nHost : h\r\n\r\n"))
        #expect(p.feed(bytes("GET / HTTP/1.1\r\nHost: h\r\n\r\n")).first == .error(HTTPParseError(400, "whitespace between field name and colon")))
    }

    @Test func reportsIdleAndReadingHead() {
        var p = HTTPRequestParser()
        #expect(p.isIdle)
        _ = p.feed(bytes("GET / HT"))
        #expect(p.isReadingHead)
        _ = p.feed(bytes("TP/1.1\r\nHost: h\r\n\r\n"))
        #expect(p.isIdle)
    }
}
