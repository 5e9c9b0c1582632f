/// base64url without padding (RFC 7515 §2, RFC 4648 §5), strict: the alphabet only, no `=`,
/// no whitespace, and the unused trailing bits must be zero so each value has one spelling.
public enum Base64URL {
    @usableFromInline static let decodeTable: [UInt8] = {
        var t = [UInt8](repeating: 0xff, count: 256)
        for (i, c) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8.enumerated() {
            t[Int(c)] = UInt8(i)
        }
        return t
    }()
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    public static func decode<C: Collection<UInt8>>(_ input: C) -> [UInt8]? {
        var out = [UInt8]()
        out.reserveCapacity(input.count * 3 / 4)
        return decode(input, into: &out) ? out : nil
    }

    /// Appends to `out`; false on any non-canonical input.
    public static func decode<C: Collection<UInt8>>(_ input: C, into out: inout [UInt8]) -> Bool {
        let rem = input.count % 4
        if rem == 1 { return false }
        var acc: UInt32 = 0
        var bits = 0
        let table = decodeTable
        for c in input {
            let v = table[Int(c)]
            if v == 0xff { return false }
            acc = (acc << 6) | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
            }
        }
        // RFC 4648 §3.5: leftover bits must be zero.
        return acc & ((1 << UInt32(bits)) - 1) == 0
    }

    public static func encode<C: Collection<UInt8>>(_ input: C) -> String {
        var out = [UInt8]()
        encode(input, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    public static func encode<C: Collection<UInt8>>(_ input: C, into out: inout [UInt8]) {
        out.reserveCapacity(out.count + (input.count * 4 + 2) / 3)
        var acc: UInt32 = 0
        var bits = 0
        for b in input {
            acc = (acc << 8) | UInt32(b)
            bits += 8
            while bits >= 6 {
                bits -= 6
                out.append(alphabet[Int((acc >> UInt32(bits)) & 0x3f)])
            }
        }
        if bits > 0 { out.append(alphabet[Int((acc << UInt32(6 - bits)) & 0x3f)]) }
    }
}
