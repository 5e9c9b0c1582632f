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
    /// One character of the base64url alphabet.
    @inline(__always) public static func isAlphabet(_ c: UInt8) -> Bool { decodeTable[Int(c)] != 0xff }

    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    public static func decode<C: Collection<UInt8>>(_ input: C) -> [UInt8]? {
        var out = [UInt8]()
        out.reserveCapacity(input.count * 3 / 4)
        return decode(input, into: &out) ? out : nil
    }

    /// Appends to `out`; false on any non-canonical input.
    public static func decode<C: Collection<UInt8>>(_ input: C, into out: inout [UInt8]) -> Bool {
        if let r = input.withContiguousStorageIfAvailable({ decode($0, into: &out) }) { return r }
        return Array(input).withUnsafeBufferPointer { decode($0, into: &out) }
    }

    static func decode(_ input: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) -> Bool {
        let n = input.count
        let rem = n % 4
        if rem == 1 { return false }
        let outCount = n / 4 * 3 + (rem == 0 ? 0 : rem - 1)
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: outCount))
        return decodeTable.withUnsafeBufferPointer { t in
            out.withUnsafeMutableBufferPointer { o in
                var i = 0, j = start
                // Four characters to three bytes; 0xff anywhere marks a character outside the alphabet.
                while i + 4 <= n {
                    let a = t[Int(input[i])], b = t[Int(input[i + 1])], c = t[Int(input[i + 2])], d = t[Int(input[i + 3])]
                    if (a | b | c | d) & 0x80 != 0 { return false }
                    let v = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                    o[j] = UInt8(truncatingIfNeeded: v >> 16)
                    o[j + 1] = UInt8(truncatingIfNeeded: v >> 8)
                    o[j + 2] = UInt8(truncatingIfNeeded: v)
                    i += 4; j += 3
                }
                switch rem {
                case 2:
                    let a = t[Int(input[i])], b = t[Int(input[i + 1])]
                    if (a | b) & 0x80 != 0 || b & 0x0f != 0 { return false }  // RFC 4648 §3.5: leftover bits zero
                    o[j] = a << 2 | b >> 4
                case 3:
                    let a = t[Int(input[i])], b = t[Int(input[i + 1])], c = t[Int(input[i + 2])]
                    if (a | b | c) & 0x80 != 0 || c & 0x03 != 0 { return false }
                    o[j] = a << 2 | b >> 4
                    o[j + 1] = b << 4 | c >> 2
                default: break
                }
                return true
            }
        }
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
