import CSodium

/// Ed25519 (RFC 8032) through libsodium, whose verify is strict: canonical S, no small-order points.
public enum Ed25519 {
    public static let publicKeyLength = 32
    public static let signatureLength = 64

    @inlinable
    public static func verify(signature: some Collection<UInt8>, message: some Collection<UInt8>,
                              publicKey: some Collection<UInt8>) -> Bool {
        withBytes(signature) { sig in
            withBytes(publicKey) { pk in
                withBytes(message) { msg in
                    guard sig.count == signatureLength, pk.count == publicKeyLength else { return false }
                    return crypto_sign_verify_detached(sig.baseAddress!,
                                                       msg.baseAddress,
                                                       UInt64(msg.count),
                                                       pk.baseAddress!) == 0
                }
            }
        }
    }

    /// Returns (seed, public key).
    public static func generate() -> (seed: [UInt8], publicKey: [UInt8]) {
        let seed = Random.bytes(32)
        return (seed, publicKey(seed: seed))
    }

    public static func publicKey(seed: [UInt8]) -> [UInt8] {
        precondition(seed.count == 32)
        var pk = [UInt8](repeating: 0, count: 32)
        var sk = [UInt8](repeating: 0, count: 64)
        _ = crypto_sign_seed_keypair(&pk, &sk, seed)
        sodium_memzero(&sk, 64)
        return pk
    }

    /// A signing key expanded once (libsodium's 64-byte secret key, derived from the seed here, so
    /// it always matches): for signing many messages without a scalar multiplication each.
    public final class Signer: @unchecked Sendable {  // immutable after init
        private let sk: UnsafeMutablePointer<UInt8>

        public init(seed: [UInt8]) {
            precondition(seed.count == 32)
            sk = .allocate(capacity: 64)
            var pk = [UInt8](repeating: 0, count: 32)
            _ = crypto_sign_seed_keypair(&pk, sk, seed)
        }

        deinit {
            sodium_memzero(sk, 64)
            sk.deallocate()
        }

        public func sign(_ message: some Collection<UInt8>) -> [UInt8] {
            var sig = [UInt8](repeating: 0, count: 64)
            withBytes(message) { msg in
                _ = crypto_sign_detached(&sig, nil, msg.baseAddress, UInt64(msg.count), sk)
            }
            return sig
        }
    }

    public static func sign(message: some Collection<UInt8>, seed: [UInt8]) -> [UInt8] {
        precondition(seed.count == 32)
        var pk = [UInt8](repeating: 0, count: 32)
        var sk = [UInt8](repeating: 0, count: 64)
        _ = crypto_sign_seed_keypair(&pk, &sk, seed)
        var sig = [UInt8](repeating: 0, count: 64)
        withBytes(message) { msg in
            _ = crypto_sign_detached(&sig, nil, msg.baseAddress,
                                     UInt64(msg.count), sk)
        }
        sodium_memzero(&sk, 64)
        return sig
    }
}
