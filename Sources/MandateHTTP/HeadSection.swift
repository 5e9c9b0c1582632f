/// Where the parser's scan found the lines of a head, and what kind of bytes it saw.
struct FieldLines {
    var requestLine: Range<Int>
    /// Offset of the CR ending each field line.
    var ends: [Int]
    /// A control byte other than CR, LF, HTAB is somewhere in the head.
    var control: Bool
    /// A byte ≥ 0x80 may be in the head.
    var obsText: Bool
}

/// Parses a complete, CRLF-checked request head (request line and field section).
enum HeadSection {
    typealias Bytes = UnsafeBufferPointer<UInt8>

    static func parse(_ p: Bytes, _ lines: FieldLines, limits: HTTPParserLimits) -> Result<HTTPRequestHead, HTTPParseError> {
        let requestLine = lines.requestLine
        func fail(_ status: Int, _ reason: String) -> Result<HTTPRequestHead, HTTPParseError> {
            .failure(HTTPParseError(status, reason))
        }
        // §3: request-line = method SP request-target SP HTTP-version
        let lineEnd = requestLine.upperBound - 2
        var i = tokenEnd(p, requestLine.lowerBound)
        let methodEnd = i
        guard methodEnd > requestLine.lowerBound, i < lineEnd, p[i] == 0x20 else { return fail(400, "invalid method") }
        if methodEnd - requestLine.lowerBound > 32 { return fail(501, "method not implemented") }
        i += 1
        let targetStart = i
        while i < lineEnd && p[i] > 0x20 && p[i] < 0x7F { i += 1 }
        let targetEnd = i
        guard targetEnd > targetStart, i < lineEnd, p[i] == 0x20 else { return fail(400, "invalid request-target") }
        if targetEnd - targetStart > limits.maxURILength { return fail(414, "request-target too long") }
        i += 1
        // §2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT
        guard lineEnd - i == 8, p[i] == 0x48, p[i + 1] == 0x54, p[i + 2] == 0x54, p[i + 3] == 0x50, p[i + 4] == 0x2F,
              isDigit(p[i + 5]), p[i + 6] == 0x2E, isDigit(p[i + 7]) else { return fail(400, "invalid HTTP version") }
        guard p[i + 5] == 0x31 else { return fail(505, "HTTP version not supported") }
        let minor = p[i + 7] == 0x30 ? 0 : 1

        let method = string(p, requestLine.lowerBound, methodEnd)
        // §3.2.1 origin-form; §3.2.4 asterisk-form only for OPTIONS.
        if p[targetStart] != 0x2F && !(targetEnd - targetStart == 1 && p[targetStart] == 0x2A && method == "OPTIONS") {
            return fail(400, "request-target must be in origin-form")
        }
        // §3.2: a fragment is never part of a request-target.
        for k in targetStart ..< targetEnd where p[k] == 0x23 { return fail(400, "fragment (#) in request-target") }
        let target = string(p, targetStart, targetEnd)

        var headers: [HTTPHeader] = []
        headers.reserveCapacity(lines.ends.count)
        var hosts = 0, authorizations = 0, dpops = 0, delegations = 0
        var contentLength: Int? = nil
        var transferEncodings = 0
        var chunked = false
        var close = false, keepAlive = false

        var line = requestLine.upperBound
        for eol in lines.ends {
            defer { line = eol + 2 }
            // §5.2: obs-fold is refused.
            if p[line] == 0x20 || p[line] == 0x09 { return fail(400, "obsolete line folding") }
            var j = tokenEnd(p, line)
            let nameEnd = j
            guard j < eol else { return fail(400, "field line without colon") }
            if p[j] == 0x20 || p[j] == 0x09 { return fail(400, "whitespace between field name and colon") }  // §5.1
            guard p[j] == 0x3A else { return fail(400, "invalid field name") }
            guard nameEnd > line else { return fail(400, "empty field name") }
            j += 1
            while j < eol && (p[j] == 0x20 || p[j] == 0x09) { j += 1 }
            var valueEnd = eol
            while valueEnd > j && (p[valueEnd - 1] == 0x20 || p[valueEnd - 1] == 0x09) { valueEnd -= 1 }
            // RFC 9110 §5.5: field-vchar / SP / HTAB / obs-text. The scan saw no other control
            // byte in the head unless `control` is set.
            if lines.control {
                for k in j ..< valueEnd {
                    let b = p[k]
                    if (b < 0x20 && b != 0x09) || b == 0x7F { return fail(400, "invalid byte in field value") }
                }
            }
            let nameLength = nameEnd - line
            switch nameLength {
            case 4 where nameIs(p, line, "host"):
                hosts += 1
                if hosts > 1 { return fail(400, "more than one Host") }
            case 4 where nameIs(p, line, "dpop"):
                dpops += 1
                if dpops > 1 { return fail(400, "more than one DPoP") }
            case 10 where nameIs(p, line, "connection"):
                scanConnection(p, j, valueEnd, close: &close, keepAlive: &keepAlive)
            case 13 where nameIs(p, line, "authorization"):
                authorizations += 1
                if authorizations > 1 { return fail(400, "more than one Authorization") }
            case 14 where nameIs(p, line, "content-length"):
                // §6.3: a repeated Content-Length is refused even when the values agree.
                guard contentLength == nil else { return fail(400, "more than one Content-Length") }
                guard let n = decimal(p, j, valueEnd) else { return fail(400, "invalid Content-Length") }
                contentLength = n
            case 16 where nameIs(p, line, "agent-delegation"):
                delegations += 1
                if delegations > 1 { return fail(400, "more than one Agent-Delegation") }
            case 17 where nameIs(p, line, "transfer-encoding"):
                transferEncodings += 1
                chunked = valueEnd - j == 7 && nameIs(p, j, "chunked")
                if transferEncodings > 1 || !chunked { return fail(400, "unsupported Transfer-Encoding") }
            default:
                break
            }
            let value = string(p, j, valueEnd, ascii: !lines.obsText)
            // obs-text that is not UTF-8 would reach the upstream altered (decoding repairs it to
            // U+FFFD, so the bytes differ); refuse it instead.
            if lines.obsText && !value.utf8.elementsEqual(UnsafeBufferPointer(rebasing: p[j ..< valueEnd])) {
                return fail(400, "field value is not UTF-8")
            }
            headers.append(HTTPHeader(string(p, line, nameEnd), value))
        }

        // §6.1: Transfer-Encoding with Content-Length is a smuggling vector; refuse.
        if chunked && contentLength != nil { return fail(400, "both Content-Length and Transfer-Encoding") }
        if chunked && minor == 0 { return fail(400, "Transfer-Encoding in HTTP/1.0") }
        // RFC 9112 §3.2: a 1.1 request without Host is refused.
        if minor == 1 && hosts == 0 { return fail(400, "missing Host") }

        let framing: HTTPRequestHead.Framing
        if chunked {
            framing = .chunked
        } else if let n = contentLength {
            if n > limits.maxBodySize { return fail(413, "request body too large") }
            framing = .length(n)
        } else {
            framing = .none
        }
        // §9.3: persistence defaults.
        let persistent = minor == 1 ? !close : (keepAlive && !close)
        return .success(HTTPRequestHead(method: method, target: target, minorVersion: minor, headers: headers,
                                        framing: framing, keepAlive: persistent))
    }

    /// `ascii`: the bytes are known to be ASCII (tchar, request-target, or no obs-text in the
    /// head), so the String is made without validating them again.
    @inline(__always)
    static func string(_ p: Bytes, _ from: Int, _ to: Int, ascii: Bool = true) -> String {
        let bytes = UnsafeBufferPointer(rebasing: p[from ..< to])
        if ascii, #available(macOS 26, iOS 26, watchOS 26, tvOS 26, visionOS 26, *) {
            return String(copying: UTF8Span(unchecked: bytes.span, isKnownASCII: true))
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// End of the run of tchar from `from`; the CR ending the line (not a tchar) stops it. Out of
    /// line: in the large caller the loop ran short of registers.
    @inline(never)
    static func tokenEnd(_ p: Bytes, _ from: Int) -> Int {
        var i = from
        while isTokenChar(p[i]) { i &+= 1 }
        return i
    }

    /// Case-insensitive compare of `p[at...]` against a lowercase ASCII literal.
    @inline(__always)
    static func nameIs(_ p: Bytes, _ at: Int, _ lower: StaticString) -> Bool {
        lower.withUTF8Buffer { l in
            for k in 0 ..< l.count where p[at + k] | 0x20 != l[k] { return false }
            return true
        }
    }

    /// 1*DIGIT without sign or spaces; nil on overflow.
    static func decimal(_ p: Bytes, _ from: Int, _ to: Int) -> Int? {
        guard to > from else { return nil }
        var n = 0
        for k in from ..< to {
            guard isDigit(p[k]) else { return nil }
            let (m, o1) = n.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(Int(p[k] - 0x30))
            if o1 || o2 { return nil }
            n = s
        }
        return n
    }

    /// Connection = #connection-option (RFC 9110 §7.6.1).
    static func scanConnection(_ p: Bytes, _ from: Int, _ to: Int, close: inout Bool, keepAlive: inout Bool) {
        var k = from
        while k < to {
            while k < to && (p[k] == 0x20 || p[k] == 0x09 || p[k] == 0x2C) { k += 1 }
            let start = k
            while k < to && p[k] != 0x2C && p[k] != 0x20 && p[k] != 0x09 { k += 1 }
            let length = k - start
            if length == 5 && nameIs(p, start, "close") { close = true }
            if length == 10 && nameIs(p, start, "keep-alive") { keepAlive = true }
        }
    }
}

@inline(__always)
func isDigit(_ b: UInt8) -> Bool { b &- 0x30 < 10 }

/// tchar (RFC 9110 §5.6.2) by byte value, 16 a row: "1" for ALPHA, DIGIT and !#$%&'*+-.^_`|~.
let tcharTable: StaticString = """
    0000000000000000\
    0000000000000000\
    0101111100110110\
    1111111111000000\
    0111111111111111\
    1111111111100011\
    1111111111111111\
    1111111111101010\
    0000000000000000\
    0000000000000000\
    0000000000000000\
    0000000000000000\
    0000000000000000\
    0000000000000000\
    0000000000000000\
    0000000000000000
    """

@inline(__always)
public func isTokenChar(_ b: UInt8) -> Bool { tcharTable.utf8Start[Int(b)] == 0x31 }
