/// A minimal HTTP/1.1 response reader for the load generator: the status line, the framing headers
/// (Content-Length, Transfer-Encoding: chunked, Connection), and the body counted, never stored.
/// A pure state machine over bytes (RFC 9112 §6.3 message body length), reused across responses.
public struct HTTPResponseReader: Sendable {
    public enum Outcome: Equatable, Sendable {
        case needMore
        /// A complete response; `consumed` bytes of the last input belonged to it.
        case complete(status: Int, keepAlive: Bool, consumed: Int)
        case invalid(String)
    }

    enum Phase: Equatable {
        case head
        case fixed(remaining: Int)
        case untilClose
        case chunkSize(value: Int, digits: Int)
        case chunkExtension(value: Int)
        case chunkSizeLF(value: Int)
        case chunkData(remaining: Int)
        case chunkDataCR, chunkDataLF
        case trailerLineStart, trailerLine, finalLF
    }

    public static let maxHeadBytes = 64 << 10
    private var head: [UInt8] = []
    private var phase = Phase.head
    private var status = 0
    private var keepAlive = true
    private var bodyExpected = true

    public init() { head.reserveCapacity(1024) }

    /// Ready for the response to a new request; `bodyExpected` is false for HEAD (RFC 9112 §6.3 ¶1).
    public mutating func expectResponse(bodyExpected: Bool = true) {
        head.removeAll(keepingCapacity: true)
        phase = .head
        status = 0
        keepAlive = true
        self.bodyExpected = bodyExpected
    }

    /// Whether the bytes so far end a close-delimited body (an EOF there completes the response).
    public var endsAtClose: Bool { phase == .untilClose }
    public var inProgress: Bool { !(phase == .head && head.isEmpty) }

    public mutating func finishAtEOF() -> Outcome {
        phase == .untilClose ? .complete(status: status, keepAlive: false, consumed: 0) : .invalid("connection closed mid-response")
    }

    public mutating func feed(_ input: UnsafeRawBufferPointer) -> Outcome {
        let bytes = input.bindMemory(to: UInt8.self)
        var i = 0
        while true {
            switch phase {
            case .head:
                let old = head.count
                let room = Self.maxHeadBytes - old
                let take = Swift.min(room, bytes.count - i)
                head.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[i ..< i + take]))
                guard let end = Self.headEnd(head, from: Swift.max(0, old - 3)) else {
                    if head.count >= Self.maxHeadBytes { return .invalid("response head over 64 KB") }
                    return .needMore
                }
                i += end - old
                head.removeSubrange(end...)
                if let problem = parseHead() { return .invalid(problem) }
                if phase == .head {  // 1xx: an interim response, the final one follows
                    head.removeAll(keepingCapacity: true)
                    continue
                }
                if case .fixed(0) = phase { return .complete(status: status, keepAlive: keepAlive, consumed: i) }
            case .fixed(let remaining):
                let take = Swift.min(remaining, bytes.count - i)
                i += take
                if take == remaining { return .complete(status: status, keepAlive: keepAlive, consumed: i) }
                phase = .fixed(remaining: remaining - take)
                return .needMore
            case .untilClose:
                return .needMore
            case .chunkData(let remaining):
                let take = Swift.min(remaining, bytes.count - i)
                i += take
                phase = take == remaining ? .chunkDataCR : .chunkData(remaining: remaining - take)
                if i == bytes.count { return .needMore }
            default:
                guard i < bytes.count else { return .needMore }
                let b = bytes[i]
                i += 1
                switch stepChunked(b) {
                case .some(let problem): return .invalid(problem)
                case .none: if phase == .head { return .complete(status: status, keepAlive: keepAlive, consumed: i) }
                }
            }
        }
    }

    /// One byte of chunked framing outside chunk data (RFC 9112 §7.1); `.head` afterwards means done.
    private mutating func stepChunked(_ b: UInt8) -> String? {
        switch phase {
        case .chunkSize(let v, let digits):
            if let d = Self.hex(b) {
                guard digits < 15 else { return "chunk size too large" }
                phase = .chunkSize(value: v << 4 | d, digits: digits + 1)
            } else if digits > 0 && (b == UInt8(ascii: ";") || b == UInt8(ascii: " ") || b == UInt8(ascii: "\t")) {
                phase = .chunkExtension(value: v)
            } else if digits > 0 && b == UInt8(ascii: "\r") {
                phase = .chunkSizeLF(value: v)
            } else {
                return "bad chunk size"
            }
        case .chunkExtension(let v):
            if b == UInt8(ascii: "\r") { phase = .chunkSizeLF(value: v) }
        case .chunkSizeLF(let v):
            guard b == UInt8(ascii: "\n") else { return "bad chunk size line" }
            phase = v == 0 ? .trailerLineStart : .chunkData(remaining: v)
        case .chunkDataCR:
            guard b == UInt8(ascii: "\r") else { return "chunk data longer than its size" }
            phase = .chunkDataLF
        case .chunkDataLF:
            guard b == UInt8(ascii: "\n") else { return "chunk data longer than its size" }
            phase = .chunkSize(value: 0, digits: 0)
        case .trailerLineStart:
            phase = b == UInt8(ascii: "\r") ? .finalLF : .trailerLine
        case .trailerLine:
            if b == UInt8(ascii: "\n") { phase = .trailerLineStart }
        case .finalLF:
            guard b == UInt8(ascii: "\n") else { return "bad end of chunked body" }
            phase = .head
        default:
            break
        }
        return nil
    }

    static func hex(_ b: UInt8) -> Int? {
        switch b {
        case UInt8(ascii: "0") ... UInt8(ascii: "9"): Int(b - UInt8(ascii: "0"))
        case UInt8(ascii: "a") ... UInt8(ascii: "f"): Int(b - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A") ... UInt8(ascii: "F"): Int(b - UInt8(ascii: "A") + 10)
        default: nil
        }
    }

    /// The offset just past CRLF CRLF, searching from `from`.
    static func headEnd(_ h: [UInt8], from: Int) -> Int? {
        guard h.count >= 4 else { return nil }
        var i = from
        while i + 3 < h.count {
            if h[i + 3] != 0x0A { i += 1; continue }  // quick reject on the last byte
            if h[i] == 0x0D && h[i + 1] == 0x0A && h[i + 2] == 0x0D { return i + 4 }
            i += 1
        }
        return nil
    }

    /// Status line and framing headers; sets `phase` to how the body is delimited.
    private mutating func parseHead() -> String? {
        let h = head
        // "HTTP/1.x SSS"
        guard h.count >= 12, h.starts(with: "HTTP/1.".utf8), h[8] == 0x20,
              let s0 = digit(h[9]), let s1 = digit(h[10]), let s2 = digit(h[11]) else { return "bad status line" }
        status = s0 * 100 + s1 * 10 + s2
        let minor = h[7]
        keepAlive = minor != UInt8(ascii: "0")
        var contentLength: Int? = nil
        var chunked = false
        var lineStart = (h.firstIndex(of: 0x0A) ?? h.count) + 1
        while lineStart < h.count - 2 {
            var lineEnd = lineStart
            while lineEnd < h.count && h[lineEnd] != 0x0A { lineEnd += 1 }
            let line = h[lineStart ..< (lineEnd > lineStart && h[lineEnd - 1] == 0x0D ? lineEnd - 1 : lineEnd)]
            lineStart = lineEnd + 1
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { continue }
            let name = line[line.startIndex ..< colon]
            var v = colon + 1
            while v < line.endIndex && (line[v] == 0x20 || line[v] == 0x09) { v += 1 }
            let value = line[v...]
            if Self.equalsLowercase(name, "content-length") {
                var n = 0
                for b in value where b != 0x20 && b != 0x09 {
                    guard let d = digit(b), n < Int.max / 10 - 9 else { return "bad Content-Length" }
                    n = n * 10 + d
                }
                if let c = contentLength, c != n { return "conflicting Content-Length" }
                contentLength = n
            } else if Self.equalsLowercase(name, "transfer-encoding") {
                chunked = Self.containsLowercase(value, "chunked")
            } else if Self.equalsLowercase(name, "connection") {
                if Self.containsLowercase(value, "close") { keepAlive = false }
                if Self.containsLowercase(value, "keep-alive") { keepAlive = true }
            }
        }
        if (100 ..< 200).contains(status) && status != 101 { phase = .head; return nil }
        if !bodyExpected || status == 204 || status == 304 { phase = .fixed(remaining: 0) }
        else if chunked { phase = .chunkSize(value: 0, digits: 0) }
        else if let n = contentLength { phase = .fixed(remaining: n) }
        else { phase = .untilClose; keepAlive = false }
        return nil
    }

    private func digit(_ b: UInt8) -> Int? { b >= 0x30 && b <= 0x39 ? Int(b - 0x30) : nil }

    static func equalsLowercase(_ a: ArraySlice<UInt8>, _ lower: StaticString) -> Bool {
        guard a.count == lower.utf8CodeUnitCount else { return false }
        return lower.withUTF8Buffer { l in
            var j = 0
            for b in a { if (b | 0x20) != l[j] { return false }; j += 1 }
            return true
        }
    }

    static func containsLowercase(_ a: ArraySlice<UInt8>, _ lower: StaticString) -> Bool {
        lower.withUTF8Buffer { l in
            guard a.count >= l.count else { return false }
            var i = a.startIndex
            while i + l.count <= a.endIndex {
                var j = 0
                while j < l.count && (a[i + j] | 0x20) == l[j] { j += 1 }
                if j == l.count { return true }
                i += 1
            }
            return false
        }
    }
}
