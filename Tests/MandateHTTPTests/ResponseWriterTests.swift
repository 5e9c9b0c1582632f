import Testing
@testable import MandateHTTP

@Suite struct ResponseWriterTests {
    @Test func serialisesResponseHead() {
        var out: [UInt8] = []
        HTTPResponseWriter.appendHead(status: 404, headers: [HTTPHeader("Content-Length", "0")], to: &out)
        #expect(String(decoding: out, as: UTF8.self) == "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    }

    @Test func writesChunks() {
        var out: [UInt8] = []
        let data = bytes(String(repeating: "x", count: 26))
        data.withUnsafeBytes { HTTPResponseWriter.appendChunk($0, to: &out) }
        [UInt8]().withUnsafeBytes { HTTPResponseWriter.appendChunk($0, to: &out) }
        HTTPResponseWriter.appendLastChunk(to: &out)
        #expect(String(decoding: out, as: UTF8.self) == "1a\r\n" + String(repeating: "x", count: 26) + "\r\n0\r\n\r\n")
    }

    @Test func chunkedOutputRoundTripsThroughParser() {
        var out = bytes("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
        let payload = (0 ..< 5000).map { UInt8($0 % 251) }
        payload.withUnsafeBytes { HTTPResponseWriter.appendChunk($0, to: &out) }
        HTTPResponseWriter.appendLastChunk(to: &out)
        var p = HTTPRequestParser()
        #expect(Array(p.feed(out).dropFirst()) == [.body(payload), .end])
    }
}
