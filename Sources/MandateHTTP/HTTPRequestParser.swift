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
    /// The head so far when it spans reads; capacity is kept across messages.
    var headBytes: [UInt8] = []
    /// Offset of the CR ending each field line, recorded once so HeadSection does not rescan.
    var fieldLineEnds: [Int] = []
    var lineStart = 0
    var requestLineStart = 0
    var requestLineEnd = -1
    /// The previous read ended in CR.
    var sawCR = false
    /// A control byte other than CR, LF, HTAB was seen: HeadSection checks values byte by byte.
    var sawControl = false
    /// A byte ≥ 0x80 may be in the head: values are validated as UTF-8.
    var obsText = false
    var chunkedTotal = 0
    var trailerBytes = 0

    public init(limits: HTTPParserLimits = HTTPParserLimits()) {
        self.limits = limits
        headBytes.reserveCapacity(1024)
        fieldLineEnds.reserveCapacity(32)
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

    /// Looks at 16 bytes at a time (64 while they are plain), and at single bytes only where a
    /// control byte is.
    mutating func parseHead(_ input: UnsafeRawBufferPointer) -> (event: HTTPParseEvent?, consumed: Int) {
        let n = input.count
        guard let p = input.baseAddress, n > 0 else { return (nil, 0) }
        let base = headBytes.count
        if sawCR && p.load(as: UInt8.self) != 0x0A { return fail(400, "bare CR in request head", consumed: 1) }
        var i = 0
        var denseUntil = 0  // a 64-byte block up to here holds a control byte: no use skipping
        while i < n {
            let v: Bytes16
            if i &+ 16 <= n {
                v = p.loadUnaligned(fromByteOffset: i, as: Bytes16.self)
            } else {
                var tail = Bytes16(repeating: 0x20)  // padded with spaces
                withUnsafeMutableBytes(of: &tail) { $0.copyMemory(from: UnsafeRawBufferPointer(start: p + i, count: n - i)) }
                v = tail
            }
            let unusual = lanes(outsidePrintable(v))
            if unusual == .zero {
                i &+= 16
                // Long token values: skip plain bytes 64 at a time.
                if i >= denseUntil {
                    while i &+ 64 <= n && isPrintable64(p + i) { i &+= 64 }
                    denseUntil = i &+ 64
                }
                continue
            }
            if lanes(v) != .zero { obsText = true }
            let controls = lanes(outsidePrintable(v) & ~v)
            for half in 0 ..< 2 {
                var mask = controls[half].littleEndian  // bit 8k + 7 is byte k
                while mask != 0 {
                    let q = i &+ half &* 8 &+ mask.trailingZeroBitCount >> 3
                    mask &= mask &- 1
                    switch p.load(fromByteOffset: q, as: UInt8.self) {
                    case 0x0D:
                        if q + 1 < n && p.load(fromByteOffset: q + 1, as: UInt8.self) != 0x0A {
                            return fail(400, "bare CR in request head", consumed: q + 2)
                        }
                    case 0x0A:
                        let afterCR = q > 0 ? p.load(fromByteOffset: q - 1, as: UInt8.self) == 0x0D : sawCR
                        guard afterCR else { return fail(400, "bare LF in request head", consumed: q + 1) }
                        let cr = base + q - 1
                        if requestLineEnd < 0 {
                            if cr == lineStart {
                                // §2.2: a few empty lines before the request-line are ignored.
                                guard cr < 15 else { return fail(400, "empty lines before request-line", consumed: q + 1) }
                                requestLineStart = cr + 2
                            } else {
                                if let e = limitExceeded(lineEnd: cr) { return fail(e.status, e.reason, consumed: q + 1) }
                                requestLineEnd = cr + 2
                            }
                        } else if cr == lineStart {
                            return finishHead(input, consumed: q + 1)
                        } else {
                            if let e = limitExceeded(lineEnd: cr) { return fail(e.status, e.reason, consumed: q + 1) }
                            fieldLineEnds.append(cr)
                            if fieldLineEnds.count > limits.maxHeaderCount {
                                return fail(431, "too many header fields", consumed: q + 1)
                            }
                        }
                        lineStart = cr + 2
                    case 0x09:
                        break
                    default:
                        sawControl = true
                    }
                }
            }
            i &+= 16
        }
        // A line that has not ended yet must not grow past the limits either (slow header flood).
        sawCR = p.load(fromByteOffset: n - 1, as: UInt8.self) == 0x0D
        let end = base + n - (sawCR ? 1 : 0)
        if end > lineStart, let e = limitExceeded(lineEnd: end) { return fail(e.status, e.reason, consumed: n) }
        headBytes.append(contentsOf: input)
        return (nil, n)
    }

    /// The limit broken by the current line if it ends (CR excluded) at `lineEnd`: 414 for the
    /// request line (with slack for method and version; HeadSection checks the target exactly),
    /// 431 for the field section.
    func limitExceeded(lineEnd: Int) -> HTTPParseError? {
        if requestLineEnd < 0 {
            return lineEnd - 1 - lineStart > limits.maxURILength + 64 ? HTTPParseError(414, "request-target too long") : nil
        }
        return lineEnd - 1 - requestLineEnd >= limits.maxHeaderBytes ? HTTPParseError(431, "header section too large") : nil
    }

    /// The head ends at `consumed` in `input`. Parsed in place when it all came in this read.
    mutating func finishHead(_ input: UnsafeRawBufferPointer, consumed: Int) -> (event: HTTPParseEvent?, consumed: Int) {
        let result: Result<HTTPRequestHead, HTTPParseError>
        let fields = FieldLines(requestLine: requestLineStart ..< requestLineEnd, ends: fieldLineEnds,
                                control: sawControl, obsText: obsText)
        if headBytes.isEmpty {
            // The caller's buffer may be raw memory (the event loop's read buffer): bind it to read it typed.
            let head = UnsafeRawBufferPointer(rebasing: input[0 ..< consumed]).bindMemory(to: UInt8.self)
            result = HeadSection.parse(head, fields, limits: limits)
        } else {
            headBytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[0 ..< consumed]))
            result = headBytes.withUnsafeBufferPointer { HeadSection.parse($0, fields, limits: limits) }
            headBytes.removeAll(keepingCapacity: true)
        }
        fieldLineEnds.removeAll(keepingCapacity: true)
        lineStart = 0; requestLineStart = 0; requestLineEnd = -1; sawCR = false; sawControl = false; obsText = false
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

typealias Bytes16 = SIMD16<UInt8>

/// Bit 7 set in each byte outside 0x20...0x7E (CTLs, DEL, obs-text): b + 1 has it for 0x7F...0xFE,
/// b - 0x20 for 0x00...0x1F and 0xFF. Wrapping byte arithmetic, which the compiler turns into SSE2
/// (vector comparisons it does not).
@inline(__always)
func outsidePrintable(_ v: Bytes16) -> Bytes16 {
    (v &+ Bytes16(repeating: 1)) | (v &- Bytes16(repeating: 0x20))
}

/// The bit 7 of each byte, as two words (bytes 0-7 and 8-15).
@inline(__always)
func lanes(_ v: Bytes16) -> SIMD2<UInt64> {
    unsafeBitCast(v, to: SIMD2<UInt64>.self) & 0x8080_8080_8080_8080
}

/// True if the 64 bytes at `p` are all in 0x20...0x7E.
@inline(__always)
func isPrintable64(_ p: UnsafeRawPointer) -> Bool {
    let v = outsidePrintable(p.loadUnaligned(as: Bytes16.self)) | outsidePrintable(p.loadUnaligned(fromByteOffset: 16, as: Bytes16.self))
        | outsidePrintable(p.loadUnaligned(fromByteOffset: 32, as: Bytes16.self)) | outsidePrintable(p.loadUnaligned(fromByteOffset: 48, as: Bytes16.self))
    let w = lanes(v)
    return w[0] | w[1] == 0
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
