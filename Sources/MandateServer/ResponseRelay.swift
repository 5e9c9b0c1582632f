import MandateHTTP

/// Turns the upstream response head, line by line as libcurl reports it, into the head sent to
/// the client: hop-by-hop fields dropped (RFC 9110 §7.6.1), framing chosen for the client.
public struct ResponseRelay: Sendable {
    public enum Framing: Sendable, Equatable {
        /// No body (HEAD, 204, 304).
        case none
        /// Upstream Content-Length passed through; bytes relayed as they come.
        case length
        /// Length unknown: chunked to an HTTP/1.1 client (RFC 9112 §7.1).
        case chunked
        /// Length unknown, HTTP/1.0 client: the body ends when the connection closes.
        case closeDelimited
    }
    public enum Progress: Sendable, Equatable { case more, complete, invalid }

    public let requestIsHEAD: Bool
    public let clientMinorVersion: Int
    public private(set) var status = 0
    public private(set) var framing: Framing = .none
    public private(set) var isComplete = false
    /// Field lines without CRLF, back to back; `fields` indexes them.
    private var storage: [UInt8] = []
    private var fields: [(nameEnd: Int, start: Int, end: Int)] = []
    private var dropped: [[UInt8]] = []

    public init(requestIsHEAD: Bool, clientMinorVersion: Int) {
        self.requestIsHEAD = requestIsHEAD; self.clientMinorVersion = clientMinorVersion
        storage.reserveCapacity(512)
    }

    /// One header line including its CRLF. Lines after the final head (trailers) are ignored.
    public mutating func consume(_ line: UnsafeRawBufferPointer) -> Progress {
        if isComplete { return .complete }
        var end = line.count
        if end > 0 && line[end - 1] == 0x0A { end -= 1 }
        if end > 0 && line[end - 1] == 0x0D { end -= 1 }
        if status == 0 {
            // status-line = HTTP-version SP status-code SP [reason-phrase] (RFC 9112 §4)
            guard end >= 12, line[0] == 0x48, line[1] == 0x54, line[2] == 0x54, line[3] == 0x50, line[4] == 0x2F,
                  let sp = (0 ..< end).first(where: { line[$0] == 0x20 }), sp + 3 <= end,
                  isDigit3(line, sp + 1) else { return .invalid }
            status = Int(line[sp + 1] - 0x30) * 100 + Int(line[sp + 2] - 0x30) * 10 + Int(line[sp + 3] - 0x30)
            return (100 ... 599).contains(status) ? .more : .invalid  // RFC 9110 §15
        }
        if end == 0 {
            if status < 200 {  // interim response (e.g. 100 Continue): wait for the final one
                status = 0; storage.removeAll(keepingCapacity: true); fields.removeAll(keepingCapacity: true)
                return .more
            }
            return finish() ? .complete : .invalid
        }
        // RFC 9112 §5: field-name is a token right before the colon (no obs-fold, no whitespace);
        // the value has no CR, LF or NUL. Anything else could read differently at the client.
        var colon = 0
        while colon < end && isTokenChar(line[colon]) { colon += 1 }
        guard colon > 0, colon < end, line[colon] == 0x3A else { return .invalid }
        for i in (colon + 1) ..< end where line[i] == 0x0D || line[i] == 0x0A || line[i] == 0 { return .invalid }
        let base = storage.count
        storage.append(contentsOf: UnsafeRawBufferPointer(rebasing: line[0 ..< end]))
        fields.append((base + colon, base, base + end))
        return .more
    }

    private func isDigit3(_ p: UnsafeRawBufferPointer, _ at: Int) -> Bool {
        at + 2 < p.count && (0 ..< 3).allSatisfy { p[at + $0] &- 0x30 < 10 }
    }

    private static let hopByHop: [[UInt8]] = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
                                              "trailer", "upgrade", "mandate-request-id"].map { Array($0.utf8) }

    /// False when the framing is ambiguous (RFC 9110 §8.6: differing or invalid Content-Length).
    private mutating func finish() -> Bool {
        isComplete = true
        var hasLength = false, hasTransferEncoding = false
        dropped = Self.hopByHop
        for f in fields {
            if nameIs(f, "content-length") {
                var digits = storage[(f.nameEnd + 1) ..< f.end].drop { $0 == 0x20 || $0 == 0x09 }
                while let l = digits.last, l == 0x20 || l == 0x09 { digits = digits.dropLast() }
                guard !hasLength, !digits.isEmpty, digits.count <= 18, digits.allSatisfy({ $0 &- 0x30 < 10 }) else { return false }
                hasLength = true
            }
            if nameIs(f, "transfer-encoding") { hasTransferEncoding = true }
            if nameIs(f, "connection") {
                // Options named in Connection are hop-by-hop too.
                var token: [UInt8] = []
                for b in storage[(f.nameEnd + 1) ..< f.end] + [0x2C] {
                    if b == 0x2C {
                        if !token.isEmpty { dropped.append(token) }
                        token.removeAll()
                    } else if b != 0x20 && b != 0x09 {
                        token.append(b | (b >= 0x41 && b <= 0x5A ? 0x20 : 0))
                    }
                }
            }
        }
        if requestIsHEAD || status == 204 || status == 304 { framing = .none }
        else if hasLength && !hasTransferEncoding { framing = .length }
        else { framing = clientMinorVersion >= 1 ? .chunked : .closeDelimited }
        return true
    }

    private func nameIs(_ f: (nameEnd: Int, start: Int, end: Int), _ lower: StaticString) -> Bool {
        guard f.nameEnd - f.start == lower.utf8CodeUnitCount else { return false }
        return lower.withUTF8Buffer { l in (0 ..< l.count).allSatisfy { storage[f.start + $0] | 0x20 == l[$0] } }
    }

    private func isDropped(_ f: (nameEnd: Int, start: Int, end: Int)) -> Bool {
        let length = f.nameEnd - f.start
        return dropped.contains { d in
            d.count == length && (0 ..< length).allSatisfy { storage[f.start + $0] | 0x20 == d[$0] }
        }
    }

    /// The client's response head. Call once `consume` has returned `.complete`.
    public func appendHead(requestID: String, keepAlive: Bool, to out: inout [UInt8]) {
        HTTPResponseWriter.appendStatusLine(status, to: &out)
        for f in fields where !isDropped(f) {
            if framing == .chunked && nameIs(f, "content-length") { continue }
            out.append(contentsOf: storage[f.start ..< f.end])
            out.append(0x0D); out.append(0x0A)
        }
        if framing == .chunked { HTTPResponseWriter.appendField("Transfer-Encoding", "chunked", to: &out) }
        if !keepAlive || framing == .closeDelimited {
            HTTPResponseWriter.appendField("Connection", "close", to: &out)
        } else if clientMinorVersion == 0 {
            HTTPResponseWriter.appendField("Connection", "keep-alive", to: &out)  // RFC 9112 §9.3: 1.0 must be told
        }
        HTTPResponseWriter.appendField("Mandate-Request-Id", requestID, to: &out)
        out.append(0x0D); out.append(0x0A)
    }
}
