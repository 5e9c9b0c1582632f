/// RFC 3986 §6.2.2 syntax-based normalisation of a path, with the refusals a proxy needs so that
/// the path policy decides on is the one the upstream serves.
public enum PathNormalizer {
    public enum Refusal: Error, Equatable, Sendable {
        case invalidPercentEncoding
        case encodedSlash
        case encodedDotSegment
        case backslash
        case nul
        case aboveRoot
        case notAbsolute
        case pathParameter
        case doubleEncoding
        case encodedControl
        case invalidUTF8

        public var description: String {
            switch self {
            case .invalidPercentEncoding: "invalid percent-encoding in path"
            case .encodedSlash: "encoded slash or backslash in path"
            case .encodedDotSegment: "encoded dot segment in path"
            case .backslash: "backslash in path"
            case .nul: "NUL in path"
            case .aboveRoot: "path climbs above the root"
            case .notAbsolute: "path must start with '/'"
            case .pathParameter: "path parameter (;) in path"
            case .doubleEncoding: "encoded '%' (double encoding) in path"
            case .encodedControl: "encoded control character in path"
            case .invalidUTF8: "percent-encoded path is not UTF-8"
            }
        }
    }

    public struct Options: Sendable {
        /// Refuse what different servers read differently (encoded '/', '\', NUL, encoded dots).
        public var strict: Bool
        /// Collapse `//` as nginx's merge_slashes does.
        public var mergeSlashes: Bool
        public static let policy = Options(strict: true, mergeSlashes: true)
        public static let rfc3986 = Options(strict: false, mergeSlashes: false)
    }

    @inline(__always) static func isUnreserved(_ c: UInt8) -> Bool {
        (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39)
            || c == 0x2d || c == 0x2e || c == 0x5f || c == 0x7e
    }

    @inline(__always) static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x41...0x46: c - 0x41 + 10
        case 0x61...0x66: c - 0x61 + 10
        default: nil
        }
    }

    static let hexDigits = Array("0123456789ABCDEF".utf8)

    /// Decodes unreserved percent-encodings, upper-cases the rest (§6.2.2.1, §6.2.2.2), then
    /// removes dot segments (§5.2.4, §6.2.2.3). An empty path becomes `/` (§6.2.3).
    public static func normalize<C: Collection<UInt8>>(_ path: C, _ options: Options) -> Result<String, Refusal> {
        if isNormal(path) { return .success(String(decoding: path, as: UTF8.self)) }
        let input = Array(path)
        if input.isEmpty { return .success("/") }
        guard input[0] == UInt8(ascii: "/") else { return .failure(.notAbsolute) }
        let raw = input[1...].split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        var stack: [[UInt8]] = []
        for (k, rawSegment) in raw.enumerated() {
            let last = k == raw.count - 1
            var seg: [UInt8] = []
            var encodedDot = false
            var i = rawSegment.startIndex
            while i < rawSegment.endIndex {
                let c = rawSegment[i]
                if c == 0 { return .failure(.nul) }
                if c == UInt8(ascii: "\\") && options.strict { return .failure(.backslash) }
                // Servlet containers read ";…" as parameters ("/admin;x/" is "/admin/" there).
                if c == UInt8(ascii: ";") && options.strict { return .failure(.pathParameter) }
                guard c == UInt8(ascii: "%") else { seg.append(c); i += 1; continue }
                guard i + 2 < rawSegment.endIndex, let hi = hexValue(rawSegment[i + 1]),
                      let lo = hexValue(rawSegment[i + 2]) else { return .failure(.invalidPercentEncoding) }
                let byte = hi << 4 | lo
                if options.strict {
                    if byte == 0 { return .failure(.nul) }
                    if byte == UInt8(ascii: "/") || byte == UInt8(ascii: "\\") { return .failure(.encodedSlash) }
                    if byte < 0x20 || byte == 0x7f { return .failure(.encodedControl) }
                    // As Spring's StrictHttpFirewall: an encoded ';' or '%' means a second decoding
                    // somewhere would see a different path.
                    if byte == UInt8(ascii: ";") { return .failure(.pathParameter) }
                    if byte == UInt8(ascii: "%") { return .failure(.doubleEncoding) }
                }
                if isUnreserved(byte) {
                    encodedDot = encodedDot || byte == 0x2e
                    seg.append(byte)
                } else {
                    seg += [UInt8(ascii: "%"), hexDigits[Int(hi)], hexDigits[Int(lo)]]
                }
                i += 3
            }
            let isDot = seg == [0x2e], isDotDot = seg == [0x2e, 0x2e]
            if (isDot || isDotDot) && encodedDot && options.strict { return .failure(.encodedDotSegment) }
            if isDotDot {
                if stack.isEmpty {
                    if options.strict { return .failure(.aboveRoot) }
                } else {
                    stack.removeLast()
                }
            }
            if isDot || isDotDot {
                if last { stack.append([]) }  // "/a/.." names the directory "/"
            } else if seg.isEmpty && !last && options.mergeSlashes {
                continue
            } else {
                stack.append(seg)
            }
        }
        var out: [UInt8] = [UInt8(ascii: "/")]
        out.reserveCapacity(input.count)
        for (k, s) in stack.enumerated() {
            if k > 0 { out.append(UInt8(ascii: "/")) }
            out += s
        }
        // Overlong or broken UTF-8 (%C0%AF) decodes differently in different servers.
        if options.strict && !decodesToUTF8(out) { return .failure(.invalidUTF8) }
        return .success(String(decoding: out, as: UTF8.self))
    }

    /// Most paths are already normal: visible ASCII without `%`, `;`, `\\`, `//`, `.` or `..` segments.
    @inline(__always)
    static func isNormal<C: Collection<UInt8>>(_ path: C) -> Bool {
        guard path.first == UInt8(ascii: "/") else { return false }
        var previous: UInt8 = 0
        var segmentLength = 0, dots = 0
        for c in path {
            if c <= 0x20 || c >= 0x7f || c == UInt8(ascii: "%") || c == UInt8(ascii: ";") || c == UInt8(ascii: "\\") {
                return false
            }
            if c == UInt8(ascii: "/") {
                if previous == UInt8(ascii: "/") || (segmentLength > 0 && segmentLength == dots && dots <= 2) { return false }
                segmentLength = 0; dots = 0
            } else {
                segmentLength += 1
                if c == UInt8(ascii: ".") { dots += 1 }
            }
            previous = c
        }
        return !(segmentLength > 0 && segmentLength == dots && dots <= 2)
    }

    static func decodesToUTF8(_ path: [UInt8]) -> Bool {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(path.count)
        var i = 0
        while i < path.count {
            if path[i] == UInt8(ascii: "%"), i + 2 < path.count, let hi = hexValue(path[i + 1]), let lo = hexValue(path[i + 2]) {
                bytes.append(hi << 4 | lo)
                i += 3
            } else {
                bytes.append(path[i])
                i += 1
            }
        }
        return String(validating: bytes, as: UTF8.self) != nil
    }
}
