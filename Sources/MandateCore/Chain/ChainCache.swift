import Synchronization

/// Chains already verified, by SHA-256 of the leaf token. A leaf commits to its parent through
/// `prf`, and so on up to the root, so its hash names the whole chain; the entry also keeps the
/// presented Agent-Delegation text, and answers only when it is byte-identical.
/// Bounded: at most `capacity` entries, each about 1 KB plus the Agent-Delegation text.
public final class ChainCache: Sendable {
    public struct Key: Hashable, Sendable {
        let a: UInt64, b: UInt64, c: UInt64, d: UInt64
        public init(_ digest: [UInt8]) {
            func word(_ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 << 8 | UInt64(digest[o + $1]) } }
            a = word(0); b = word(8); c = word(16); d = word(24)
        }
    }

    private let shards: [Locked<[Key: VerifiedChain]>]
    private let perShard: Int

    public init(capacity: Int, shards count: Int = 8) {
        shards = (0..<count).map { _ in Locked([:]) }
        perShard = max(1, capacity / count)
    }

    private func shard(_ k: Key) -> Locked<[Key: VerifiedChain]> { shards[Int(k.d % UInt64(shards.count))] }

    /// For /metrics: lookups that found a chain, and that did not.
    public let hits = Atomic<Int>(0), misses = Atomic<Int>(0)

    public func lookup(_ key: Key, ancestry: [UInt8]) -> VerifiedChain? {
        guard let hit = shard(key).withLock({ $0[key] }), hit.ancestry == ancestry else {
            misses.add(1, ordering: .relaxed)
            return nil
        }
        hits.add(1, ordering: .relaxed)
        return hit
    }

    public func store(_ key: Key, _ chain: VerifiedChain, now: Int64) {
        let limit = perShard
        shard(key).withLock { m in
            if m.count >= limit {
                m = m.filter { $0.value.expiresAt > now }
                if m.count >= limit { m.remove(at: m.startIndex) }
            }
            m[key] = chain
        }
    }
}
