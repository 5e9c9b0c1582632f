/// RFC 8941 Structured Field Values, the part RFC 9421 and RFC 9530 use: dictionaries whose
/// members are items or inner lists, with parameters. Strict: a repeated key is refused rather
/// than the last one kept (RFC 8941 §4.2.2 would keep it).
public enum SF {
    public enum Bare: Sendable, Equatable {
        case integer(Int64), string(String), token(String), bytes([UInt8]), bool(Bool)
        public var string: String? { if case .string(let s) = self { s } else { nil } }
        public var integer: Int64? { if case .integer(let i) = self { i } else { nil } }
        public var bytes: [UInt8]? { if case .bytes(let b) = self { b } else { nil } }
    }

    public struct Item: Sendable, Equatable {
        public var value: Bare
        public var params: [Param]
    }

    public struct Param: Sendable, Equatable {
        public var key: String
        public var value: Bare
    }

    public enum Value: Sendable, Equatable {
        case item(Item)
        case innerList([Item], params: [Param])
    }

    public struct Member: Sendable, Equatable {
        public var key: String
        public var value: Value
        /// The member's value as it was written (RFC 9421 §2.3 signs it as such).
        public var text: String
    }

    public static func dictionary(_ field: String) -> Result<[Member], Reason> {
        var p = Parser(Array(field.utf8))
        do {
            let members = try p.dictionary()
            return .success(members)
        } catch {
            return .failure(error)
        }
    }

    struct Parser {
        let b: [UInt8]
        var i = 0
        init(_ b: [UInt8]) { self.b = b }

        var peek: UInt8? { i < b.count ? b[i] : nil }
        mutating func skip(_ set: (UInt8) -> Bool) { while let c = peek, set(c) { i += 1 } }
        func fail(_ why: String) -> Reason { Reason("structured field: \(why) at byte \(i)") }

        mutating func dictionary() throws(Reason) -> [Member] {
            var out: [Member] = []
            skip { $0 == 0x20 }
            while peek != nil {
                let key = try self.key()
                guard !out.contains(where: { $0.key == key }) else { throw fail("key \(key) repeated") }
                let start: Int
                let value: Value
                if peek == UInt8(ascii: "=") {
                    i += 1
                    start = i
                    value = try member()
                } else {
                    start = i
                    value = .item(Item(value: .bool(true), params: try params()))
                }
                out.append(Member(key: key, value: value, text: String(decoding: b[start ..< i], as: UTF8.self)))
                skip { $0 == 0x20 || $0 == 0x09 }
                guard peek != nil else { break }
                guard peek == UInt8(ascii: ",") else { throw fail("expected ','") }
                i += 1
                skip { $0 == 0x20 || $0 == 0x09 }
                guard peek != nil else { throw fail("trailing ','") }
            }
            return out
        }

        mutating func member() throws(Reason) -> Value {
            if peek == UInt8(ascii: "(") {
                i += 1
                var items: [Item] = []
                while true {
                    skip { $0 == 0x20 }
                    if peek == UInt8(ascii: ")") { i += 1; return .innerList(items, params: try params()) }
                    items.append(Item(value: try bare(), params: try params()))
                    guard peek == 0x20 || peek == UInt8(ascii: ")") else { throw fail("expected ' ' or ')' in an inner list") }
                }
            }
            return .item(Item(value: try bare(), params: try params()))
        }

        mutating func params() throws(Reason) -> [Param] {
            var out: [Param] = []
            while peek == UInt8(ascii: ";") {
                i += 1
                skip { $0 == 0x20 }
                let k = try key()
                guard !out.contains(where: { $0.key == k }) else { throw fail("parameter \(k) repeated") }
                if peek == UInt8(ascii: "=") { i += 1; out.append(Param(key: k, value: try bare())) }
                else { out.append(Param(key: k, value: .bool(true))) }
            }
            return out
        }

        static func lcalpha(_ c: UInt8) -> Bool { c >= 0x61 && c <= 0x7a }
        static func digit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

        mutating func key() throws(Reason) -> String {
            guard let c = peek, Self.lcalpha(c) || c == UInt8(ascii: "*") else { throw fail("expected a key") }
            let start = i
            skip { Self.lcalpha($0) || Self.digit($0) || $0 == 0x5f || $0 == 0x2d || $0 == 0x2e || $0 == 0x2a }
            return String(decoding: b[start ..< i], as: UTF8.self)
        }

        mutating func bare() throws(Reason) -> Bare {
            guard let c = peek else { throw fail("expected a value") }
            switch c {
            case UInt8(ascii: "-"), 0x30 ... 0x39:
                let start = i
                if c == UInt8(ascii: "-") { i += 1 }
                let digits = i
                skip(Self.digit)
                guard i > digits, i - digits <= 15, peek != UInt8(ascii: ".") else { throw fail("only integers of up to 15 digits") }
                return .integer(Int64(String(decoding: b[start ..< i], as: UTF8.self))!)
            case UInt8(ascii: "\""):
                i += 1
                var s: [UInt8] = []
                while true {
                    guard let d = peek else { throw fail("unterminated string") }
                    i += 1
                    if d == UInt8(ascii: "\"") { break }
                    if d == UInt8(ascii: "\\") {
                        guard let e = peek, e == UInt8(ascii: "\"") || e == UInt8(ascii: "\\") else { throw fail("bad escape") }
                        s.append(e); i += 1
                        continue
                    }
                    guard d >= 0x20 && d < 0x7f else { throw fail("control or non-ASCII byte in a string") }
                    s.append(d)
                }
                return .string(String(decoding: s, as: UTF8.self))
            case UInt8(ascii: ":"):
                i += 1
                let start = i
                skip { $0 != UInt8(ascii: ":") }
                guard peek == UInt8(ascii: ":") else { throw fail("unterminated byte sequence") }
                let text = b[start ..< i]
                i += 1
                guard let bytes = Base64.decode(text) else { throw fail("byte sequence is not base64") }
                return .bytes(bytes)
            case UInt8(ascii: "?"):
                i += 1
                guard let v = peek, v == 0x30 || v == 0x31 else { throw fail("boolean is ?0 or ?1") }
                i += 1
                return .bool(v == 0x31)
            default:
                guard (c >= 0x41 && c <= 0x5a) || Self.lcalpha(c) || c == UInt8(ascii: "*") else { throw fail("unexpected byte") }
                let start = i
                skip { $0 > 0x20 && $0 < 0x7f && $0 != 0x22 && $0 != 0x28 && $0 != 0x29 && $0 != 0x2c && $0 != 0x3b && $0 != 0x3d }
                return .token(String(decoding: b[start ..< i], as: UTF8.self))
            }
        }
    }
}

/// Standard base64 (RFC 4648 §4), padded, as RFC 8941 byte sequences carry it.
enum Base64 {
    static func decode(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        guard text.count % 4 == 0 else { return nil }
        var t = Array(text)
        var pad = 0
        while let l = t.last, l == UInt8(ascii: "=") { t.removeLast(); pad += 1 }
        guard pad <= 2 else { return nil }
        for k in t.indices {
            switch t[k] {
            case UInt8(ascii: "+"): t[k] = UInt8(ascii: "-")
            case UInt8(ascii: "/"): t[k] = UInt8(ascii: "_")
            case UInt8(ascii: "-"), UInt8(ascii: "_"): return nil
            default: break
            }
        }
        return Base64URL.decode(t)
    }
}
