import Testing
@testable import MandateHTTP

/// The head scanner looks at 16 and 64 bytes at a time and parses in place when the head is in one
/// read; these cover the edges of that (splits, tails, long values) against the same rules.
@Suite struct HeadScanTests {
    static let long = String(repeating: "abcdefghij", count: 30)  // spans several 64-byte blocks
    static let request = "GET /a?b=c HTTP/1.1\r\nHost: h\r\nUser-Agent: t/1\r\nAuthorization: DPoP \(long)\r\n"
        + "DPoP: \(long)x\r\nX: caf\u{e9} \(long)\r\nContent-Length: 2\r\n\r\nokGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"

    /// Every split into two reads gives the same parts as one read.
    @Test func sameResultForEverySplit() {
        let input = bytes(Self.request)
        let whole = parse(Self.request)
        #expect(head(whole)?.value("authorization") == "DPoP " + Self.long)
        #expect(head(whole)?.value("x") == "caf\u{e9} " + Self.long)
        #expect(whole.filter { $0 == .end }.count == 2)
        for cut in 1 ..< input.count {
            var p = HTTPRequestParser()
            var parts = p.feed(input[..<cut])
            for part in p.feed(input[cut...]) {
                if case .body(let new) = part, case .body(let old)? = parts.last { parts[parts.count - 1] = .body(old + new) }
                else { parts.append(part) }
            }
            #expect(parts == whole, "cut at \(cut)")
        }
    }

    @Test func rejectsControlBytesAnywhereInLongValues() {
        for at in [0, 15, 16, 63, 64, 100, 299] {
            var value = Array(Self.long.utf8)
            value[at] = 0x01
            let input = bytes("GET / HTTP/1.1\r\nHost: h\r\nX: ") + value + bytes("\r\n\r\n")
            var p = HTTPRequestParser()
            #expect(status(p.feed(input)) == 400, "at \(at)")
            value[at] = 0x0A
            var q = HTTPRequestParser()
            #expect(status(q.feed(bytes("GET / HTTP/1.1\r\nHost: h\r\nX: ") + value + bytes("\r\n\r\n"))) == 400, "LF at \(at)")
        }
    }

    @Test func rejectsNonUTF8InLongValue() {
        let input = bytes("GET / HTTP/1.1\r\nHost: h\r\nX: caf\u{e9}" + Self.long) + [0xC3] + bytes("\r\n\r\n")
        var p = HTTPRequestParser()
        #expect(p.feed(input).last == .error(HTTPParseError(400, "field value is not UTF-8")))
        // Bytes ≥ 0x80 in the name are not tchar.
        #expect(status(parse("GET / HTTP/1.1\r\nHost: h\r\nX\u{e9}: 1\r\n\r\n")) == 400)
    }

    @Test func rejectsBareCRAtEndOfRead() {
        var p = HTTPRequestParser()
        #expect(p.feed(bytes("GET / HTTP/1.1\r\nHost: h\r")).isEmpty)
        #expect(p.feed(bytes("X: 1\r\n\r\n")) == [.error(HTTPParseError(400, "bare CR in request head"))])
    }

    /// RFC 9112 §2.2: empty lines before the request-line are skipped, but only a few.
    @Test func limitsEmptyLinesBeforeRequestLine() {
        let eight = String(repeating: "\r\n", count: 8)
        #expect(head(parse(eight + "GET / HTTP/1.1\r\nHost: h\r\n\r\n"))?.target == "/")
        #expect(status(parse(eight + "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")) == 400)
        #expect(status(parseByteAtATime(eight + "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")) == 400)
    }

    /// The field-section limit counts bytes, the count limit lines, at exactly the boundary.
    @Test func headerLimitsAtBoundary() {
        // "Host: a\r\nX: " is 12 bytes; a line whose last byte is at offset 63 still fits in 64.
        let limits = HTTPParserLimits(maxHeaderBytes: 64)
        let fits = "GET / HTTP/1.1\r\nHost: a\r\nX: " + String(repeating: "v", count: 52) + "\r\n\r\n"
        #expect(head(parse(fits, limits: limits)) != nil)
        #expect(head(parseByteAtATime(fits, limits: limits)) != nil)
        let over = "GET / HTTP/1.1\r\nHost: a\r\nX: " + String(repeating: "v", count: 53) + "\r\n\r\n"
        #expect(status(parse(over, limits: limits)) == 431)
        #expect(status(parseByteAtATime(over, limits: limits)) == 431)
        let endless = String(over.dropLast(2))  // "\r\n" is one Character: this drops both line ends
        #expect(status(parseByteAtATime(endless, limits: limits)) == 431)
    }

    @Test func isIdleWhenHeadIsParsedInPlace() {
        var p = HTTPRequestParser()
        _ = p.feed(bytes("GET / HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HT"))
        #expect(p.isReadingHead)
        #expect(head(p.feed(bytes("TP/1.1\r\nHost: h\r\n\r\n")))?.target == "/2")
        #expect(p.isIdle)
    }

    /// tchar (RFC 9110 §5.6.2), every byte.
    @Test func tokenCharsExactly() {
        let tchar = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        for b in 0 ... 255 { #expect(isTokenChar(UInt8(b)) == tchar.contains(UInt8(b)), "\(b)") }
    }
}
