import Testing
@testable import MandateHTTP

@Suite struct FieldTests {
    @Test func trimsOptionalWhitespaceAroundValues() {
        #expect(head(parse("GET / HTTP/1.1\r\nHost:   h \t\r\nX-A:\r\n\r\n"))?.headers == [HTTPHeader("Host", "h"), HTTPHeader("X-A", "")])
    }

    @Test func keepsObsTextInValues() {
        #expect(head(parse("GET / HTTP/1.1\r\nHost: h\r\nX: caf\u{e9}\r\n\r\n"))?.value("x") == "caf\u{e9}")
    }

    /// Non-UTF-8 obs-text would reach the upstream altered (as U+FFFD): refused instead.
    @Test func rejectsFieldValueThatIsNotUTF8() {
        var p = HTTPRequestParser()
        let parts = p.feed(bytes("GET / HTTP/1.1\r\nHost: h\r\nX: caf") + [0xff] + bytes("\r\n\r\n"))
        #expect(status(parts) == 400)
    }

    @Test func rejectsObsFold() {
        #expect(status(parse("GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n 2\r\n\r\n")) == 400)
        #expect(status(parse("GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\t2\r\n\r\n")) == 400)
    }

    @Test func rejectsBareLFInHead() {
        #expect(status(parse("GET / HTTP/1.1\nHost: h\r\n\r\n")) == 400)
        #expect(status(parse("GET / HTTP/1.1\r\nHost: h\n\r\n")) == 400)
        #expect(status(parse("GET / HTTP/1.1\r\nHost: h\r\n\n")) == 400)
    }

    @Test func rejectsBareCRInHead() {
        #expect(status(parse("GET / HTTP/1.1\r\nHost: h\rX: 1\r\n\r\n")) == 400)
        #expect(status(parse("GET / HTTP/1.1\r\nX: a\rb\r\nHost: h\r\n\r\n")) == 400)
    }

    @Test func rejectsInvalidFieldNameChars() {
        #expect(status(parse("GET / HTTP/1.1\r\nHost: h\r\nX(A): 1\r\n\r\n")) == 400)
        #expect(status(parse("GET / HTTP/1.1\r\nHost: h\r\n: 1\r\n\r\n")) == 400)
        #expect(status(parse("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n")) == 400)
    }

    @Test func rejectsWhitespaceBetweenFieldNameAndColon() {
        #expect(status(parse("GET / HTTP/1.1\r\nHost : h\r\n\r\n")) == 400)
        #expect(status(parse("GET / HTTP/1.1\r\nHost\t: h\r\n\r\n")) == 400)
    }

    @Test func rejectsControlBytesInFieldValue() {
        #expect(status(parse("GET / HTTP/1.1\r\nHost: h\r\nX: a\u{01}b\r\n\r\n")) == 400)
        #expect(status(parse("GET / HTTP/1.1\r\nHost: h\r\nX: a\u{7F}\r\n\r\n")) == 400)
        #expect(status(parse("GET / HTTP/1.1\r\nHost: h\r\nX: a\u{0}\r\n\r\n")) == 400)
        #expect(head(parse("GET / HTTP/1.1\r\nHost: h\r\nX: a\tb\r\n\r\n"))?.value("X") == "a\tb")
    }

    @Test func rejectsMissingHostInHTTP11() {
        #expect(status(parse("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n")) == 400)
        #expect(head(parse("GET / HTTP/1.0\r\n\r\n")) != nil)
    }

    @Test func rejectsDuplicateHost() {
        #expect(status(parse("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n")) == 400)
    }

    @Test func rejectsDuplicateAuthorization() {
        #expect(status(parse("GET / HTTP/1.1\r\nHost: a\r\nAuthorization: DPoP x\r\nAUTHORIZATION: DPoP x\r\n\r\n")) == 400)
    }

    @Test func rejectsDuplicateDPoP() {
        #expect(status(parse("GET / HTTP/1.1\r\nHost: a\r\nDPoP: x\r\ndpop: y\r\n\r\n")) == 400)
    }

    @Test func rejectsDuplicateAgentDelegation() {
        #expect(status(parse("GET / HTTP/1.1\r\nHost: a\r\nAgent-Delegation: x\r\nagent-delegation: x\r\n\r\n")) == 400)
    }

    @Test func rejectsTooManyHeadersWith431() {
        let limits = HTTPParserLimits(maxHeaderCount: 3)
        #expect(status(parse("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", limits: limits)) == 431)
        #expect(head(parse("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", limits: limits)) != nil)
    }

    @Test func rejectsLargeHeaderSectionWith431() {
        let limits = HTTPParserLimits(maxHeaderBytes: 64)
        #expect(status(parse("GET / HTTP/1.1\r\nHost: a\r\nX: " + String(repeating: "v", count: 80) + "\r\n\r\n", limits: limits)) == 431)
        // Without an end, the limit still trips (slow header flood).
        #expect(status(parse("GET / HTTP/1.1\r\nHost: a\r\nX: " + String(repeating: "v", count: 80), limits: limits)) == 431)
    }
}
