import CSodium
import CMandateShim

/// OpenSSL's SHA-256 uses the SHA extensions where the CPU has them.
public enum SHA256 {
    @inlinable
    public static func hash(_ data: some Collection<UInt8>) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        withBytes(data) { buf in
            mandate_sha256(buf.baseAddress, buf.count, &out)
        }
        return out
    }

    /// The first 128 bits of SHA-256(a || sep || b), without building the input.
    public static func prefix128(_ a: String, _ sep: UInt8, _ b: String) -> (UInt64, UInt64) {
        var a = a, b = b
        let na = a.utf8.count, n = na + 1 + b.utf8.count
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: n + 32) { buf in
            a.withUTF8 { if let p = $0.baseAddress { buf.baseAddress!.update(from: p, count: $0.count) } }
            buf[na] = sep
            b.withUTF8 { if let p = $0.baseAddress { (buf.baseAddress! + na + 1).update(from: p, count: $0.count) } }
            let out = buf.baseAddress! + n
            mandate_sha256(buf.baseAddress, n, out)
            var hi: UInt64 = 0, lo: UInt64 = 0
            for k in 0..<8 { hi = hi << 8 | UInt64(out[k]); lo = lo << 8 | UInt64(out[k + 8]) }
            return (hi, lo)
        }
    }
}

public enum Random {
    public static func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        randombytes_buf(&out, count)
        return out
    }
}

/// Constant-time equality for secrets and MACs: the time depends on the length only.
@inlinable
public func constantTimeEqual(_ a: some Collection<UInt8>, _ b: some Collection<UInt8>) -> Bool {
    guard a.count == b.count else { return false }
    return withBytes(a) { x in
        withBytes(b) { y in
            var diff: UInt8 = 0
            for i in 0..<x.count { diff |= x[i] ^ y[i] }
            return diff == 0
        }
    }
}

public enum Sodium {
    /// sodium_init is idempotent and thread-safe; call before first use.
    public static let ready: Bool = sodium_init() >= 0
}

/// Contiguous bytes without a copy for arrays and slices.
@inlinable
func withBytes<C: Collection<UInt8>, R>(_ c: C, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
    if let r = c.withContiguousStorageIfAvailable(body) { return r }
    return Array(c).withUnsafeBufferPointer(body)
}

/// SHA-256 or SHA-512 over a body that arrives in pieces (RFC 9530 Content-Digest).
public final class StreamingDigest {
    public enum Algorithm: Sendable { case sha256, sha512 }
    public let algorithm: Algorithm
    private let state: UnsafeMutableRawPointer

    public init(_ algorithm: Algorithm) {
        _ = Sodium.ready
        self.algorithm = algorithm
        switch algorithm {
        case .sha256:
            state = .allocate(byteCount: MemoryLayout<crypto_hash_sha256_state>.size, alignment: 16)
            crypto_hash_sha256_init(state.assumingMemoryBound(to: crypto_hash_sha256_state.self))
        case .sha512:
            state = .allocate(byteCount: MemoryLayout<crypto_hash_sha512_state>.size, alignment: 16)
            crypto_hash_sha512_init(state.assumingMemoryBound(to: crypto_hash_sha512_state.self))
        }
    }

    deinit { state.deallocate() }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let p = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
        switch algorithm {
        case .sha256: crypto_hash_sha256_update(state.assumingMemoryBound(to: crypto_hash_sha256_state.self), p, UInt64(bytes.count))
        case .sha512: crypto_hash_sha512_update(state.assumingMemoryBound(to: crypto_hash_sha512_state.self), p, UInt64(bytes.count))
        }
    }

    /// Once.
    public func finish() -> [UInt8] {
        switch algorithm {
        case .sha256:
            var out = [UInt8](repeating: 0, count: 32)
            crypto_hash_sha256_final(state.assumingMemoryBound(to: crypto_hash_sha256_state.self), &out)
            return out
        case .sha512:
            var out = [UInt8](repeating: 0, count: 64)
            crypto_hash_sha512_final(state.assumingMemoryBound(to: crypto_hash_sha512_state.self), &out)
            return out
        }
    }
}
