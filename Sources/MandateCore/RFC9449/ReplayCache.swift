import MandateCrypto
import Synchronization

/// 128 bits of SHA-256(jkt "." jti): proofs are single-use per key (RFC 9449 §11.1).
public struct ReplayKey: Hashable, Sendable {
    let hi: UInt64, lo: UInt64

    public init(thumbprint: String, jti: String) {
        (hi, lo) = SHA256.prefix128(thumbprint, UInt8(ascii: "."), jti)
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
/// Bounded: at most `capacity` unexpired ids; about 60 bytes per entry (the table and the expiry
/// queue). When full it refuses rather than forgets, so a flood can never reopen a replay window
/// (fail closed). Expired ids leave a few per claim, in the order they came, so no request ever
/// pays for a sweep of the whole table.
public final class MemoryReplayCache: ReplayStore {
    struct Shard {
        var seen: [ReplayKey: Int64] = [:]
        var arrivals = ExpiryQueue()

        /// Forgets up to `budget` expired ids, oldest arrival first. Expiries are near-monotonic
        /// in arrival order (iat within the window), so the front is where they expire.
        mutating func forget(now: Int64, budget: Int) {
            var n = 0
            while n < budget, let (key, exp) = arrivals.first, exp <= now {
                arrivals.removeFirst()
                if seen[key] == exp { seen[key] = nil }  // unless claimed again since
                n += 1
            }
        }
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
            s.forget(now: now, budget: 32)
            if let exp = s.seen[key], exp > now { return .replayed }
            if s.seen.count >= limit {
                s.forget(now: now, budget: .max)
                // An id later in the queue may have expired behind one that has not.
                if s.seen.count >= limit { s.seen = s.seen.filter { $0.value > now } }
                if s.seen.count >= limit { return .full }
            }
            s.seen[key] = expiresAt
            s.arrivals.append((key, expiresAt))
            return .fresh
        }
    }

    public var count: Int { shards.reduce(0) { $0 + $1.withLock { $0.seen.count } } }
}

/// A FIFO ring of (id, expiry) that grows by doubling.
struct ExpiryQueue {
    private var slots: [(ReplayKey, Int64)] = []
    private var head = 0
    private(set) var count = 0

    var first: (ReplayKey, Int64)? { count == 0 ? nil : slots[head] }

    mutating func append(_ e: (ReplayKey, Int64)) {
        if count == slots.count {
            var grown: [(ReplayKey, Int64)] = []
            grown.reserveCapacity(max(64, slots.count * 2))
            for i in 0..<count { grown.append(slots[(head + i) % slots.count]) }
            grown.append(contentsOf: repeatElement(e, count: grown.capacity - count))
            slots = grown
            head = 0
        }
        slots[(head + count) % slots.count] = e
        count += 1
    }

    mutating func removeFirst() {
        head = (head + 1) % slots.count
        count -= 1
    }
}
