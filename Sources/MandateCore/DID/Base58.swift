/// base58btc (the Bitcoin alphabet), as multibase `z` uses for did:key.
enum Base58 {
    static let alphabet = Array("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz".utf8)
    static let table: [UInt8] = {
        var t = [UInt8](repeating: 0xff, count: 256)
        for (i, c) in alphabet.enumerated() { t[Int(c)] = UInt8(i) }
        return t
    }()

    static func decode<C: Collection<UInt8>>(_ input: C) -> [UInt8]? {
        guard input.count <= 128 else { return nil }
        var out: [UInt8] = []  // little-endian base-256
        var zeros = 0
        var leading = true
        for c in input {
            let v = table[Int(c)]
            guard v != 0xff else { return nil }
            if leading && v == 0 { zeros += 1; continue }
            leading = false
            var carry = Int(v)
            for i in out.indices {
                carry += Int(out[i]) * 58
                out[i] = UInt8(carry & 0xff)
                carry >>= 8
            }
            while carry > 0 { out.append(UInt8(carry & 0xff)); carry >>= 8 }
        }
        return [UInt8](repeating: 0, count: zeros) + out.reversed()
    }

    static func encode(_ input: [UInt8]) -> String {
        var digits: [UInt8] = []  // little-endian base-58
        var zeros = 0
        var leading = true
        for b in input {
            if leading && b == 0 { zeros += 1; continue }
            leading = false
            var carry = Int(b)
            for i in digits.indices {
                carry += Int(digits[i]) << 8
                digits[i] = UInt8(carry % 58)
                carry /= 58
            }
            while carry > 0 { digits.append(UInt8(carry % 58)); carry /= 58 }
        }
        let chars = [UInt8](repeating: alphabet[0], count: zeros) + digits.reversed().map { alphabet[Int($0)] }
        return String(decoding: chars, as: UTF8.self)
    }
}
