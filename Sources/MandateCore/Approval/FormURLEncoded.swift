/// application/x-www-form-urlencoded (WHATWG URL §5; RFC 6749 Appendix B): `name=value&…`,
/// `+` for space, %XX escapes, UTF-8.
public enum FormURLEncoded {
    /// The parameters, each at most once (RFC 6749 §3.1: parameters MUST NOT repeat); nil when a
    /// name repeats, or an escape or the UTF-8 is broken.
    public static func parse(_ body: some Collection<UInt8>) -> [String: String]? {
        var out: [String: String] = [:]
        for pair in Array(body).split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let eq = pair.firstIndex(of: UInt8(ascii: "=")) ?? pair.endIndex
            guard let name = decodeComponent(pair[..<eq]),
                  let value = decodeComponent(eq == pair.endIndex ? pair[eq...] : pair[(eq + 1)...]) else { return nil }
            guard out.updateValue(value, forKey: name) == nil else { return nil }
        }
        return out
    }

    public static func decodeComponent(_ bytes: some Collection<UInt8>) -> String? {
        let b = Array(bytes)
        var out: [UInt8] = []
        out.reserveCapacity(b.count)
        var i = 0
        while i < b.count {
            switch b[i] {
            case UInt8(ascii: "+"): out.append(0x20); i += 1
            case UInt8(ascii: "%"):
                guard i + 2 < b.count, let hi = PathNormalizer.hexValue(b[i + 1]), let lo = PathNormalizer.hexValue(b[i + 2]) else { return nil }
                out.append(hi << 4 | lo); i += 3
            default: out.append(b[i]); i += 1
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    /// Everything but unreserved characters escaped (RFC 3986 §2.3), space as `+`.
    public static func encode(_ s: String) -> String {
        var out = ""
        for c in s.utf8 {
            switch c {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(c))
            case 0x20: out += "+"
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                out += "%" + String(decoding: [hex[Int(c >> 4)], hex[Int(c & 15)]], as: UTF8.self)
            }
        }
        return out
    }
}
