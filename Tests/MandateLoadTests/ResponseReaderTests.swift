import Testing
@testable import MandateLoad
import MandateCore

/// Feeds `parts` one after another; returns the outcome of the last.
func read(_ parts: [String], bodyExpected: Bool = true) -> HTTPResponseReader.Outcome {
    read(parts.map { Array($0.utf8) }, bodyExpected: bodyExpected)
}

func read(_ parts: [[UInt8]], bodyExpected: Bool = true) -> HTTPResponseReader.Outcome {
    var r = HTTPResponseReader()
    r.expectResponse(bodyExpected: bodyExpected)
    var last = HTTPResponseReader.Outcome.needMore
    for p in parts { last = p.withUnsafeBytes { r.feed($0) } }
    return last
}

/// `text` cut in two at byte `cut` ("\r\n" is one Character, so String.prefix would not do).
func split(_ text: String, at cut: Int) -> [[UInt8]] {
    let b = Array(text.utf8)
    return [Array(b[..<cut]), Array(b[cut...])]
}

@Suite struct ResponseReaderTests {
    @Test func readsContentLengthBody() {
        #expect(read(["HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"]) == .complete(status: 200, keepAlive: true, consumed: 43))
    }

    @Test func readsHeadAndBodySplitAnywhere() {
        let text = "HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\n\r\nabc"
        for cut in 1 ..< text.utf8.count {
            guard case .complete(404, true, _) = read(split(text, at: cut)) else { Issue.record("cut at \(cut)"); return }
        }
    }

    @Test func readsChunkedBodyWithExtensionsAndTrailers() {
        let text = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\nA\r\n0123456789\r\n0\r\nT: v\r\n\r\n"
        guard case .complete(200, true, _) = read([text]) else { Issue.record("chunked"); return }
        for cut in 1 ..< text.utf8.count {
            guard case .complete(200, true, _) = read(split(text, at: cut)) else {
                Issue.record("cut at \(cut)"); return
            }
        }
    }

    @Test func connectionCloseEndsKeepAlive() {
        #expect(read(["HTTP/1.1 503 x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"]) == .complete(status: 503, keepAlive: false, consumed: 56))
    }

    @Test func http10IsCloseUnlessKeepAlive() {
        guard case .complete(200, false, _) = read(["HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"]) else { Issue.record("1.0"); return }
        guard case .complete(200, true, _) = read(["HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"]) else {
            Issue.record("1.0 keep-alive"); return
        }
    }

    @Test func bodyWithoutLengthEndsAtClose() {
        var r = HTTPResponseReader()
        r.expectResponse()
        #expect(Array("HTTP/1.1 200 OK\r\n\r\npartial".utf8).withUnsafeBytes { r.feed($0) } == .needMore)
        #expect(r.endsAtClose)
        #expect(r.finishAtEOF() == .complete(status: 200, keepAlive: false, consumed: 0))
    }

    @Test func skipsInterimResponses() {
        guard case .complete(201, true, _) = read(["HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"]) else {
            Issue.record("100"); return
        }
    }

    @Test func noBodyForHeadOr204() {
        guard case .complete(200, true, _) = read(["HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"], bodyExpected: false) else {
            Issue.record("HEAD"); return
        }
        guard case .complete(204, true, _) = read(["HTTP/1.1 204 No Content\r\n\r\n"]) else { Issue.record("204"); return }
    }

    @Test func rejectsGarbageAndConflictingLengths() {
        guard case .invalid = read(["SSH-2.0-OpenSSH\r\n\r\n"]) else { Issue.record("garbage"); return }
        guard case .invalid = read(["HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"]) else { Issue.record("CL"); return }
    }
}

@Suite struct LatencyHistogramTests {
    @Test func bucketsCoverEveryValueWithinOnePercent() {
        var v: UInt64 = 1
        while v < 1 << 39 {
            let (lo, hi) = LatencyHistogram.range(LatencyHistogram.index(v))
            #expect(lo <= v && v <= hi)
            #expect(Double(hi - lo) <= Double(v) / 100 + 1)
            v = v * 3 / 2 + 1
        }
        #expect(LatencyHistogram.index((1 << 40) - 1) == LatencyHistogram.bucketCount - 1)
    }

    @Test func quantilesOfAUniformSpread() {
        var h = LatencyHistogram()
        for i in 1 ... 10_000 { h.record(UInt64(i) * 1000) }  // 1 µs … 10 ms
        let p50 = Double(h.value(atQuantile: 0.5)), p99 = Double(h.value(atQuantile: 0.99))
        #expect(abs(p50 - 5_000_000) / 5_000_000 < 0.01)
        #expect(abs(p99 - 9_900_000) / 9_900_000 < 0.01)
        #expect(h.value(atQuantile: 1) == 10_000_000)
        #expect(h.total == 10_000)
    }
}

@Suite struct ProofTemplateTests {
    /// Ed25519 is deterministic: the template must give Mint.proof's exact bytes.
    @Test func matchesMintProofByteForByte() {
        let principal = SigningKey.generate(.edDSA)
        let id = AgentIdentity.mint(count: 1, principal: principal, alg: .edDSA, scope: "s", ttl: 60, now: 1000)[0]
        let t = ProofTemplate(identity: id, method: "GET", htu: "http://127.0.0.1:8080/invoices/42")
        var out: [UInt8] = []
        t.append(jti: "abc", issuedAt: 1234, to: &out)
        let expected = Mint.proof(key: id.key, method: "GET", htu: "http://127.0.0.1:8080/invoices/42", accessToken: id.leaf,
                                  issuedAt: 1234, jti: "abc")
        #expect(String(decoding: out, as: UTF8.self) == expected)
    }
}
