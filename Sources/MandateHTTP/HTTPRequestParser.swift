/// Limits the parser enforces (from `ProxyConfig`).
public struct HTTPParserLimits: Sendable, Equatable {
    /// Longest request-target (414).
    public var maxURILength: Int
    /// Bytes of the field section, request line excluded (431).
    public var maxHeaderBytes: Int
    /// Field lines (431).
    public var maxHeaderCount: Int
    /// Content-Length, or the running total of chunk data (413).
    public var maxBodySize: Int

    public init(maxURILength: Int = 8 << 10, maxHeaderBytes: Int = 64 << 10, maxHeaderCount: Int = 100,
                maxBodySize: Int = 10 << 20) {
        self.maxURILength = maxURILength; self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaderCount = maxHeaderCount; self.maxBodySize = maxBodySize
    }
}

/// Why a message was refused: the status to answer with and a short description.
public struct HTTPParseError: Error, Sendable, Equatable {
    public var status: Int
    public var reason: String
    public init(_ status: Int, _ reason: String) { self.status = status; self.reason = reason }
}

/// One step of output. `body` is a range of the buffer passed to `parse`, valid only until the
/// caller reuses that buffer.
public enum HTTPParseEvent: Sendable, Equatable {
    case head(HTTPRequestHead)
    case body(offset: Int, count: Int)
    case end
    case error(HTTPParseError)
}

/// Incremental HTTP/1.1 request parser (RFC 9112). Pure: bytes in, events out, no I/O.
///
/// Call `parse` with the unconsumed input; it returns at most one event and how many bytes it
/// consumed. A nil event means all input was consumed and more is needed. After `.end` the next
/// call starts the next pipelined message; after `.error` the parser stays failed.
public struct HTTPRequestParser: Sendable {
    enum State: Sendable, Equatable {
        case head
        case lengthBody(remaining: Int)
        case chunkSize(value: Int, digits: Int)
        case chunkSizeWhitespace(value: Int)
        case chunkExtension(value: Int, length: Int)
        case chunkSizeLF(value: Int)
        case chunkData(remaining: Int)
        case chunkDataCR
        case chunkDataLF
        case trailer(lineLength: Int, sawCR: Bool)
        case failed(HTTPParseError)
    }

    public let limits: HTTPParserLimits
    var state: State = .head
    /// The head being accumulated; capacity is kept across messages.
    var headBytes: [UInt8] = []
    var lineStart = 0
    var requestLineStart = 0
    var requestLineEnd = -1
    var fieldLines = 0
    var sawCR = false
    var chunkedTotal = 0
    var trailerBytes = 0

    public init(limits: HTTPParserLimits = HTTPParserLimits()) {
        self.limits = limits
        headBytes.reserveCapacity(1024)
    }

    /// True between messages with nothing buffered: the connection is idle.
    public var isIdle: Bool { state == .head && headBytes.isEmpty }
    /// True while the head has begun but is not complete.
    public var isReadingHead: Bool { state == .head && !headBytes.isEmpty }

    public mutating func parse(_ input: UnsafeRawBufferPointer) -> (event: HTTPParseEvent?, consumed: Int) {
        switch state {
        case .failed(let e):
            return (.error(e), 0)
        case .head:
            return parseHead(input)
        case .lengthBody(let remaining):
            if remaining == 0 { state = .head; return (.end, 0) }
            guard !input.isEmpty else { return (nil, 0) }
            let n = min(remaining, input.count)
            state = .lengthBody(remaining: remaining - n)
            return (.body(offset: 0, count: n), n)
        default:
            return parseChunked(input)
        }
    }

    mutating func fail(_ status: Int, _ reason: String, consumed: Int = 0) -> (event: HTTPParseEvent?, consumed: Int) {
        let e = HTTPParseError(status, reason)
        state = .failed(e)
        headBytes.removeAll(keepingCapacity: true)
        return (.error(e), consumed)
    }

    // MARK: Head (RFC 9112 §2.2: lines end in CRLF; bare CR and bare LF are refused)

    mutating func parseHead(_ input: UnsafeRawBufferPointer) -> (event: HTTPParseEvent?, consumed: Int) {
        let base = headBytes.count
        let n = input.count
        var i = 0
        while i < n {
            let b = input[i]
            let at = base + i
            i += 1
            if sawCR {
                guard b == 0x0A else { return fail(400, "bare CR in request head", consumed: i) }
                sawCR = false
                let lineLength = at - 1 - lineStart
                if requestLineEnd < 0 {
                    if lineLength == 0 {
                        // §2.2: a few empty lines before the request-line are ignored.
                        guard at < 16 else { return fail(400, "empty lines before request-line", consumed: i) }
                        requestLineStart = at + 1
                    } else {
                        requestLineEnd = at + 1
                    }
                } else if lineLength == 0 {
                    headBytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[0 ..< i]))
                    return finishHead(consumed: i)
                } else {
                    fieldLines += 1
                    if fieldLines > limits.maxHeaderCount { return fail(431, "too many header fields", consumed: i) }
                }
                lineStart = at + 1
                continue
            }
            if b == 0x0D { sawCR = true; continue }
            if b == 0x0A { return fail(400, "bare LF in request head", consumed: i) }
            if requestLineEnd < 0 {
                if at - lineStart > limits.maxURILength + 64 { return fail(414, "request-target too long", consumed: i) }
            } else if at - requestLineEnd >= limits.maxHeaderBytes {
                return fail(431, "header section too large", consumed: i)
            }
        }
        headBytes.append(contentsOf: input)
        return (nil, n)
    }

    mutating func finishHead(consumed: Int) -> (event: HTTPParseEvent?, consumed: Int) {
        let result = headBytes.withUnsafeBufferPointer {
            HeadSection.parse($0, requestLine: requestLineStart ..< requestLineEnd, limits: limits)
        }
        headBytes.removeAll(keepingCapacity: true)
        lineStart = 0; requestLineStart = 0; requestLineEnd = -1; fieldLines = 0; sawCR = false
        switch result {
        case .failure(let e):
            state = .failed(e)
            return (.error(e), consumed)
        case .success(let head):
            switch head.framing {
            case .none: state = .lengthBody(remaining: 0)
            case .length(let len): state = .lengthBody(remaining: len)
            case .chunked: state = .chunkSize(value: 0, digits: 0); chunkedTotal = 0; trailerBytes = 0
            }
            return (.head(head), consumed)
        }
    }

    // MARK: Chunked body (RFC 9112 §7.1)

    mutating func parseChunked(_ input: UnsafeRawBufferPointer) -> (event: HTTPParseEvent?, consumed: Int) {
        var i = 0
        let n = input.count
        while i < n {
            let b = input[i]
            switch state {
            case .chunkSize(let value, let digits):
                if let d = hexValue(b) {
                    guard value <= (Int.max - 15) >> 4 else { return fail(400, "chunk size overflow", consumed: i) }
                    state = .chunkSize(value: value << 4 | d, digits: digits + 1)
                } else {
                    guard digits > 0 else { return fail(400, "invalid chunk size", consumed: i) }
                    switch b {
                    case 0x0D: state = .chunkSizeLF(value: value)
                    case 0x3B: state = .chunkExtension(value: value, length: 0)
                    case 0x20, 0x09: state = .chunkSizeWhitespace(value: value)  // BWS before ';' (§7.1.1)
                    default: return fail(400, "invalid chunk size", consumed: i)
                    }
                }
            case .chunkSizeWhitespace(let value):
                switch b {
                case 0x20, 0x09: break
                case 0x3B: state = .chunkExtension(value: value, length: 0)
                default: return fail(400, "invalid chunk size", consumed: i)
                }
            case .chunkExtension(let value, let length):
                // Extensions are tolerated and ignored, but bounded.
                if b == 0x0D { state = .chunkSizeLF(value: value) }
                else if b == 0x0A || (b < 0x20 && b != 0x09) || b == 0x7F {
                    return fail(400, "invalid chunk extension", consumed: i)
                } else if length >= 4096 {
                    return fail(400, "chunk extension too long", consumed: i)
                } else {
                    state = .chunkExtension(value: value, length: length + 1)
                }
            case .chunkSizeLF(let value):
                guard b == 0x0A else { return fail(400, "bare CR in chunk size line", consumed: i) }
                if value == 0 {
                    state = .trailer(lineLength: 0, sawCR: false)
                } else {
                    guard value <= limits.maxBodySize - chunkedTotal else {
                        return fail(413, "request body too large", consumed: i + 1)
                    }
                    chunkedTotal += value
                    state = .chunkData(remaining: value)
                }
            case .chunkData(let remaining):
                let take = min(remaining, n - i)
                state = remaining - take == 0 ? .chunkDataCR : .chunkData(remaining: remaining - take)
                return (.body(offset: i, count: take), i + take)
            case .chunkDataCR:
                guard b == 0x0D else { return fail(400, "chunk data not followed by CRLF", consumed: i) }
                state = .chunkDataLF
            case .chunkDataLF:
                guard b == 0x0A else { return fail(400, "chunk data not followed by CRLF", consumed: i) }
                state = .chunkSize(value: 0, digits: 0)
            case .trailer(let lineLength, let sawCR):
                // Trailer fields are read and discarded (RFC 9112 §7.1.2), within the header limit.
                trailerBytes += 1
                if trailerBytes > limits.maxHeaderBytes { return fail(431, "trailer section too large", consumed: i) }
                if sawCR {
                    guard b == 0x0A else { return fail(400, "bare CR in trailer section", consumed: i) }
                    if lineLength == 0 {
                        state = .head
                        return (.end, i + 1)
                    }
                    state = .trailer(lineLength: 0, sawCR: false)
                } else if b == 0x0D {
                    state = .trailer(lineLength: lineLength, sawCR: true)
                } else if b == 0x0A {
                    return fail(400, "bare LF in trailer section", consumed: i)
                } else if (b < 0x20 && b != 0x09) || b == 0x7F {
                    return fail(400, "invalid byte in trailer field", consumed: i)
                } else {
                    state = .trailer(lineLength: lineLength + 1, sawCR: false)
                }
            default:
                return (nil, i)
            }
            i += 1
        }
        return (nil, n)
    }
}

@inline(__always)
func hexValue(_ b: UInt8) -> Int? {
    switch b {
    case 0x30 ... 0x39: Int(b - 0x30)
    case 0x41 ... 0x46: Int(b - 0x41 + 10)
    case 0x61 ... 0x66: Int(b - 0x61 + 10)
    default: nil
    }
}

extension HTTPRequestParser {
    /// Output of `feed`, with body bytes copied out (for tests and simple callers).
    public enum Part: Sendable, Equatable {
        case head(HTTPRequestHead)
        case body([UInt8])
        case end
        case error(HTTPParseError)
    }

    /// Parses everything in `bytes`, following pipelined messages, and stops at an error.
    public mutating func feed(_ bytes: some Collection<UInt8>) -> [Part] {
        let array = Array(bytes)
        var parts: [Part] = []
        array.withUnsafeBytes { raw in
            var offset = 0
            while true {
                let (event, consumed) = parse(UnsafeRawBufferPointer(rebasing: raw[offset...]))
                guard let event else { offset += consumed; break }
                switch event {
                case .head(let h): parts.append(.head(h))
                case .body(let o, let c):
                    let bytes = Array(raw[(offset + o) ..< (offset + o + c)])
                    if case .body(let prev)? = parts.last { parts[parts.count - 1] = .body(prev + bytes) }
                    else { parts.append(.body(bytes)) }
                case .end: parts.append(.end)
                case .error(let e): parts.append(.error(e)); return
                }
                offset += consumed
            }
        }
        return parts
    }
}
