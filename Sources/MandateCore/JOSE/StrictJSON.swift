/// A JSON value (RFC 8259). Objects keep member order; names are unique.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// Integers without fraction or exponent, as NumericDate needs (RFC 7519 §2).
    case integer(Int64)
    /// Any other number.
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public var string: String? { if case .string(let s) = self { s } else { nil } }
    public var integer: Int64? { if case .integer(let i) = self { i } else { nil } }
    public var object: JSONObject? { if case .object(let o) = self { o } else { nil } }
    public var array: [JSONValue]? { if case .array(let a) = self { a } else { nil } }

    func write(to s: inout String) {
        switch self {
        case .null: s += "null"
        case .bool(let b): s += b ? "true" : "false"
        case .integer(let i): s += String(i)
        case .number(let d): s += "\(d)"
        case .string(let v): JSONText.appendString(v, to: &s)
        case .array(let a):
            s += "["
            for (i, v) in a.enumerated() { if i > 0 { s += "," }; v.write(to: &s) }
            s += "]"
        case .object(let o):
            s += "{"
            for (i, m) in o.members.enumerated() {
                if i > 0 { s += "," }
                JSONText.appendString(m.name, to: &s)
                s += ":"
                m.value.write(to: &s)
            }
            s += "}"
        }
    }
}

public struct JSONObject: Sendable, Equatable {
    public private(set) var members: [(name: String, value: JSONValue)]

    public init(members: [(name: String, value: JSONValue)]) { self.members = members }

    /// Compact serialisation, members in order.
    public func serialized() -> [UInt8] {
        var s = ""
        JSONValue.object(self).write(to: &s)
        return Array(s.utf8)
    }

    /// Byte-exact: `==` on String would also match canonically equivalent spellings.
    public subscript(name: String) -> JSONValue? {
        for m in members where sameBytes(m.name, name) { return m.value }
        return nil
    }
    public var names: [String] { members.map(\.name) }

    public static func == (a: JSONObject, b: JSONObject) -> Bool {
        a.members.count == b.members.count && zip(a.members, b.members).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }
}

/// Why a JSON text was refused.
public enum JSONError: Error, Equatable, Sendable {
    case syntax(offset: Int)
    case invalidUTF8
    case duplicateMember(String)
    case tooDeep
    case notAnObject
}

/// A strict RFC 8259 parser over bytes: UTF-8 only, no BOM, no trailing data, no lone surrogates,
/// and duplicate member names refused after unescaping (RFC 8725 §3.1 wants no ambiguity).
public struct StrictJSON {
    public static let maxDepth = 16

    public static func parseObject<C: Collection<UInt8>>(_ bytes: C) -> Result<JSONObject, JSONError> {
        let array = Array(bytes)
        return array.withUnsafeBufferPointer { buf in
            var p = StrictJSON(buf: buf)
            do {
                p.skipWhitespace()
                guard p.peek() == UInt8(ascii: "{") else { throw JSONError.notAnObject }
                let v = try p.value(depth: 0)
                p.skipWhitespace()
                guard p.pos == buf.count else { throw JSONError.syntax(offset: p.pos) }
                guard case .object(let o) = v else { throw JSONError.notAnObject }
                return .success(o)
            } catch let e as JSONError {
                return .failure(e)
            } catch {
                return .failure(.syntax(offset: p.pos))
            }
        }
    }

    private let buf: UnsafeBufferPointer<UInt8>
    private var pos = 0
    private var scratch: [UInt8] = []

    private init(buf: UnsafeBufferPointer<UInt8>) { self.buf = buf }

    private func peek() -> UInt8? { pos < buf.count ? buf[pos] : nil }

    private mutating func skipWhitespace() {
        while pos < buf.count {
            switch buf[pos] {
            case 0x20, 0x09, 0x0a, 0x0d: pos += 1
            default: return
            }
        }
    }

    private mutating func expect(_ c: UInt8) throws(JSONError) {
        guard pos < buf.count, buf[pos] == c else { throw .syntax(offset: pos) }
        pos += 1
    }

    private mutating func value(depth: Int) throws(JSONError) -> JSONValue {
        guard depth <= Self.maxDepth else { throw .tooDeep }
        skipWhitespace()
        guard let c = peek() else { throw .syntax(offset: pos) }
        switch c {
        case UInt8(ascii: "{"):
            pos += 1
            var members: [(name: String, value: JSONValue)] = []
            skipWhitespace()
            if peek() == UInt8(ascii: "}") { pos += 1; return .object(JSONObject(members: members)) }
            while true {
                skipWhitespace()
                let name = try string()
                if members.contains(where: { $0.name == name }) { throw .duplicateMember(name) }
                skipWhitespace()
                try expect(UInt8(ascii: ":"))
                let v = try value(depth: depth + 1)
                members.append((name, v))
                skipWhitespace()
                if peek() == UInt8(ascii: ",") { pos += 1; continue }
                try expect(UInt8(ascii: "}"))
                return .object(JSONObject(members: members))
            }
        case UInt8(ascii: "["):
            pos += 1
            var items: [JSONValue] = []
            skipWhitespace()
            if peek() == UInt8(ascii: "]") { pos += 1; return .array(items) }
            while true {
                items.append(try value(depth: depth + 1))
                skipWhitespace()
                if peek() == UInt8(ascii: ",") { pos += 1; continue }
                try expect(UInt8(ascii: "]"))
                return .array(items)
            }
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        default:
            return try number()
        }
    }

    private mutating func literal(_ word: StaticString) throws(JSONError) {
        let n = word.utf8CodeUnitCount
        guard pos + n <= buf.count else { throw .syntax(offset: pos) }
        let w = UnsafeBufferPointer(start: word.utf8Start, count: n)
        for i in 0..<n where buf[pos + i] != w[i] { throw .syntax(offset: pos) }
        pos += n
    }

    private mutating func number() throws(JSONError) -> JSONValue {
        let start = pos
        var integral = true
        if peek() == UInt8(ascii: "-") { pos += 1 }
        guard let first = peek(), first >= 0x30, first <= 0x39 else { throw .syntax(offset: pos) }
        pos += 1
        if first != 0x30 { while let d = peek(), d >= 0x30, d <= 0x39 { pos += 1 } }
        if peek() == UInt8(ascii: ".") {
            integral = false
            pos += 1
            guard let d = peek(), d >= 0x30, d <= 0x39 else { throw .syntax(offset: pos) }
            while let d = peek(), d >= 0x30, d <= 0x39 { pos += 1 }
        }
        if let e = peek(), e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            integral = false
            pos += 1
            if let s = peek(), s == UInt8(ascii: "+") || s == UInt8(ascii: "-") { pos += 1 }
            guard let d = peek(), d >= 0x30, d <= 0x39 else { throw .syntax(offset: pos) }
            while let d = peek(), d >= 0x30, d <= 0x39 { pos += 1 }
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: buf[start..<pos]), as: UTF8.self)
        if integral, let i = Int64(text) { return .integer(i) }
        guard let d = Double(text), d.isFinite else { throw .syntax(offset: start) }
        return .number(d)
    }

    private mutating func string() throws(JSONError) -> String {
        try expect(UInt8(ascii: "\""))
        // Fast path: no escapes, the bytes are the string.
        var end = pos
        while end < buf.count, buf[end] != UInt8(ascii: "\""), buf[end] != UInt8(ascii: "\\"), buf[end] >= 0x20 { end += 1 }
        if end < buf.count, buf[end] == UInt8(ascii: "\"") {
            let bytes = UnsafeBufferPointer(rebasing: buf[pos..<end])
            pos = end + 1
            guard let s = utf8String(bytes) else { throw .invalidUTF8 }
            return s
        }
        scratch.removeAll(keepingCapacity: true)
        while true {
            guard pos < buf.count else { throw .syntax(offset: pos) }
            let c = buf[pos]
            pos += 1
            switch c {
            case UInt8(ascii: "\""):
                guard let s = scratch.withUnsafeBufferPointer(utf8String) else { throw .invalidUTF8 }
                return s
            case UInt8(ascii: "\\"):
                guard pos < buf.count else { throw .syntax(offset: pos) }
                let e = buf[pos]
                pos += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scratch.append(e)
                case UInt8(ascii: "b"): scratch.append(0x08)
                case UInt8(ascii: "f"): scratch.append(0x0c)
                case UInt8(ascii: "n"): scratch.append(0x0a)
                case UInt8(ascii: "r"): scratch.append(0x0d)
                case UInt8(ascii: "t"): scratch.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if scalar >= 0xD800 && scalar <= 0xDBFF {
                        // A high surrogate must be followed by an escaped low surrogate.
                        guard pos + 1 < buf.count, buf[pos] == UInt8(ascii: "\\"), buf[pos + 1] == UInt8(ascii: "u")
                        else { throw .invalidUTF8 }
                        pos += 2
                        let low = try hex4()
                        guard low >= 0xDC00 && low <= 0xDFFF else { throw .invalidUTF8 }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if scalar >= 0xDC00 && scalar <= 0xDFFF {
                        throw .invalidUTF8
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw .invalidUTF8 }
                    scratch.append(contentsOf: UTF8.encode(u)!)
                default: throw .syntax(offset: pos - 1)
                }
            default:
                guard c >= 0x20 else { throw .syntax(offset: pos - 1) }
                scratch.append(c)
            }
        }
    }

    private mutating func hex4() throws(JSONError) -> UInt32 {
        guard pos + 4 <= buf.count else { throw .syntax(offset: pos) }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = buf[pos]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw .syntax(offset: pos)
            }
            v = v << 4 | d
            pos += 1
        }
        return v
    }
}

/// A String from UTF-8 bytes, nil when they are not UTF-8. ASCII, the usual case, skips validation.
@inline(__always)
func utf8String(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
    var high: UInt8 = 0
    for b in bytes { high |= b }
    if high < 0x80 { return String(decoding: bytes, as: UTF8.self) }
    return String(validating: bytes, as: UTF8.self)
}

/// Byte equality of two strings (String's == also equates canonically equivalent spellings).
@inline(__always)
func sameBytes(_ a: String, _ b: String) -> Bool {
    guard a.utf8.count == b.utf8.count else { return false }
    if let r = a.utf8.withContiguousStorageIfAvailable({ x in
        b.utf8.withContiguousStorageIfAvailable { y in
            for i in 0..<x.count where x[i] != y[i] { return false }
            return true
        }
    }), let r { return r }
    return a.utf8.elementsEqual(b.utf8)
}
