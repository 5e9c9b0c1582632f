import MandateCrypto
import Synchronization

/// 128 bits of SHA-256(jkt "." jti): proofs are single-use per key (RFC 9449 §11.1).
public struct ReplayKey: Hashable, Sendable {
    let hi: UInt64, lo: UInt64

    public init(thumbprint: String, jti: String) {
        var input = Array(thumbprint.utf8)
        input.append(UInt8(ascii: "."))
        input += jti.utf8
        let d = SHA256.hash(input)
        var h: UInt64 = 0, l: UInt64 = 0
        for i in 0..<8 { h = h << 8 | UInt64(d[i]); l = l << 8 | UInt64(d[i + 8]) }
        hi = h; lo = l
    }
}

public enum ReplayVerdict: Sendable, Equatable { case fresh, replayed, full }

/// Where seen proof ids live. A later store is shared between replicas; this interface stays.
public protocol ReplayStore: Sendable {
    /// Records `key` until `expiresAt` (Unix seconds). `.replayed` when it is already recorded and
    /// unexpired; `.full` when it cannot be recorded without forgetting an unexpired one.
    func claim(_ key: ReplayKey, expiresAt: Int64, now: Int64) -> ReplayVerdict
}

/// In-memory replay store, sharded to keep event loops off each other's locks.
/// Bounded: at most `capacity` unexpired ids; about 40 bytes per entry. When full it refuses
/// rather than forgets, so a flood can never reopen a replay window (fail closed).
public final class MemoryReplayCache: ReplayStore {
    struct Shard {
        var seen: [ReplayKey: Int64] = [:]
        var nextSweep: Int64 = 0
    }

    private let shards: [Locked<Shard>]
    private let perShard: Int

    /// The capacity is split over the shards (a shard is full at capacity / shards); small
    /// capacities get one shard, so that the bound is exact.
    public init(capacity: Int, shards: Int = 16) {
        let count = capacity < 4096 ? 1 : shards
        self.shards = (0..<count).map { _ in Locked(Shard()) }
        perShard = max(1, capacity / count)
    }

    public func claim(_ key: ReplayKey, expiresAt: Int64, now: Int64) -> ReplayVerdict {
        let limit = perShard
        return shards[Int(key.lo % UInt64(shards.count))].withLock { s in
            if let exp = s.seen[key], exp > now { return .replayed }
            if s.seen.count >= limit || now >= s.nextSweep {
                s.seen = s.seen.filter { $0.value > now }
                s.nextSweep = now + 1
                if s.seen.count >= limit { return .full }
            }
            s.seen[key] = expiresAt
            return .fresh
        }
    }

    public var count: Int { shards.reduce(0) { $0 + $1.withLock { $0.seen.count } } }
}
