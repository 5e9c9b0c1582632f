import Testing
import MandateCore
@testable import MandateServer

@Suite struct AccessLogTests {
    @Test func formatsOneJSONLine() {
        let r = AccessRecord(unixMillis: 1_767_323_045_678, requestID: "abc", method: "GET", path: "/a\"b",
                             status: 200, forwarded: true, reason: nil,
                             facts: AuditFacts(principal: "did:key:p", agent: nil, chain: ["x", "y"], route: "r"),
                             latencyMillis: 1.2345, peer: "127.0.0.1")
        var s = ""
        r.appendLine(to: &s)
        #expect(s == "{\"ts\":\"2026-01-02T03:04:05.678Z\",\"request_id\":\"abc\",\"method\":\"GET\",\"path\":\"/a\\\"b\","
            + "\"status\":200,\"decision\":\"forward\",\"reason\":null,\"principal\":\"did:key:p\",\"agent\":null,"
            + "\"chain\":[\"x\",\"y\"],\"route\":\"r\",\"latency_ms\":1.235,\"peer\":\"127.0.0.1\"}\n")
    }

    @Test func formatsRefusalWithReason() {
        let r = AccessRecord(unixMillis: 0, requestID: "i", method: "POST", path: "/", status: 401, forwarded: false,
                             reason: "invalid_token", facts: AuditFacts(), latencyMillis: 0, peer: "::1")
        var s = ""
        r.appendLine(to: &s)
        #expect(s.hasPrefix("{\"ts\":\"1970-01-01T00:00:00.000Z\""))
        #expect(s.contains("\"decision\":\"refuse\",\"reason\":\"invalid_token\""))
        #expect(s.contains("\"chain\":[]"))
    }

    @Test func requestIDsAreUniqueHex() {
        var g = RequestIDGenerator()
        let a = g.next(), b = g.next()
        #expect(a != b)
        #expect(a.utf8.count == 32)
        #expect(a.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) })
    }

    @Test func splitsUpstreamIntoOriginAndPrefix() throws {
        #expect(try LoopSettings.split(upstream: "http://127.0.0.1:9000") == ("http://127.0.0.1:9000", ""))
        #expect(try LoopSettings.split(upstream: "http://h:1/api/v1/") == ("http://h:1", "/api/v1"))
        #expect(throws: ServerError.self) { try LoopSettings.split(upstream: "ftp://h") }
    }
}
