import Testing
@testable import MandateHTTP

@Suite struct FramingTests {
    @Test func readsContentLengthBody() {
        let parts = parse("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello")
        #expect(head(parts)?.framing == .length(5))
        #expect(Array(parts.dropFirst()) == [.body(bytes("hello")), .end])
    }

    @Test func emitsEndForZeroContentLength() {
        let parts = parse("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
        #expect(head(parts)?.framing == .length(0))
        #expect(parts.last == .end)
    }

    @Test func waitsForRestOfBody() {
        var p = HTTPRequestParser()
        let first = p.feed(bytes("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhe"))
        #expect(first.count == 2)
        #expect(p.feed(bytes("llo")) == [.body(bytes("llo")), .end])
    }

    @Test func rejectsContentLengthWithTransferEncoding() {
        #expect(status(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")) == 400)
        #expect(status(parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n")) == 400)
    }

    @Test func rejectsDuplicateContentLengthEvenWhenEqual() {
        #expect(status(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc")) == 400)
        #expect(status(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc")) == 400)
    }

    @Test func rejectsInvalidContentLength() {
        for v in ["+3", "-3", "3 3", "0x3", "", "3a", "99999999999999999999999"] {
            #expect(status(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \(v)\r\n\r\n")) == 400, "\(v)")
        }
    }

    @Test func rejectsTransferEncodingOtherThanChunked() {
        for v in ["gzip", "gzip, chunked", "chunked, chunked", "identity", "chunked;q=1", "xchunked"] {
            #expect(status(parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \(v)\r\n\r\n")) == 400, "\(v)")
        }
        #expect(status(parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n")) == 400)
        #expect(head(parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n"))?.framing == .chunked)
    }

    @Test func rejectsTransferEncodingInHTTP10() {
        #expect(status(parse("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")) == 400)
    }

    @Test func rejectsLargeContentLengthWith413() {
        let limits = HTTPParserLimits(maxBodySize: 10)
        #expect(status(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n", limits: limits)) == 413)
        #expect(head(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n", limits: limits)) != nil)
    }

    @Test func readsChunkedBody() {
        let parts = parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        #expect(Array(parts.dropFirst()) == [.body(bytes("hello world")), .end])
    }

    @Test func toleratesChunkExtensions() {
        let parts = parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;name=val;x\r\nhello\r\nA ; y=\"q\"\r\n0123456789\r\n0;z\r\n\r\n")
        #expect(Array(parts.dropFirst()) == [.body(bytes("hello0123456789")), .end])
    }

    @Test func discardsTrailers() {
        let parts = parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-Sum: 1\r\nY: 2\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(parts.count == 5)
        #expect(parts[2] == .end)
        #expect(head(Array(parts.dropFirst(3)))?.method == "GET")
    }

    @Test func rejectsLargeTrailerSectionWith431() {
        let limits = HTTPParserLimits(maxHeaderBytes: 32)
        #expect(status(parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + String(repeating: "a", count: 40) + "\r\n\r\n", limits: limits)) == 431)
    }

    @Test func rejectsInvalidChunkSize() {
        for size in ["", "g", "-1", "+1", "0x1", " 1", "1 x"] {
            #expect(status(parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\(size)\r\na\r\n0\r\n\r\n")) == 400, "\(size)")
        }
    }

    @Test func rejectsChunkSizeOverflow() {
        #expect(status(parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF\r\n")) == 400)
    }

    @Test func rejectsChunkDataWithoutCRLF() {
        #expect(status(parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n")) == 400)
        #expect(status(parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\na\r\n0\r\n\r\n")) == 400)
    }

    @Test func rejectsChunkedBodyOverLimitWith413() {
        let limits = HTTPParserLimits(maxBodySize: 8)
        let parts = parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", limits: limits)
        #expect(status(parts) == 413)
        #expect(parts.contains(.body(bytes("hello"))))
    }
}
