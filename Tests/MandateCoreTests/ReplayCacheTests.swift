import Testing
@testable import MandateCore

/// RFC 9449 §11.1: each (key, jti) once within the window; bounded, and closed when full.
@Suite struct ReplayCacheTests {
    func key(_ jti: String, _ jkt: String = "jkt") -> ReplayKey { ReplayKey(thumbprint: jkt, jti: jti) }

    @Test func firstClaimIsFresh() {
        let c = MemoryReplayCache(capacity: 16, shards: 1)
        #expect(c.claim(key("a"), expiresAt: now + 61, now: now) == .fresh)
        #expect(c.count == 1)
    }

    @Test func secondClaimBeforeExpiryIsReplayed() {
        let c = MemoryReplayCache(capacity: 16, shards: 1)
        #expect(c.claim(key("a"), expiresAt: now + 61, now: now) == .fresh)
        #expect(c.claim(key("a"), expiresAt: now + 90, now: now + 60) == .replayed)
    }

    @Test func sameJTIUnderAnotherKeyIsFresh() {
        let c = MemoryReplayCache(capacity: 16, shards: 1)
        #expect(c.claim(key("a", "k1"), expiresAt: now + 61, now: now) == .fresh)
        #expect(c.claim(key("a", "k2"), expiresAt: now + 61, now: now) == .fresh)
    }

    @Test func keyDependsOnBothThumbprintAndJTI() {
        // Thumbprints are base64url and never contain '.', so "jkt.jti" is unambiguous.
        #expect(key("x", "k") == key("x", "k"))
        #expect(key("x", "k") != key("y", "k"))
        #expect(key("x", "k") != key("x", "l"))
    }

    @Test func fullCacheRefusesRatherThanEvictsUnexpired() {
        let c = MemoryReplayCache(capacity: 2, shards: 1)
        #expect(c.claim(key("a"), expiresAt: now + 61, now: now) == .fresh)
        #expect(c.claim(key("b"), expiresAt: now + 61, now: now) == .fresh)
        #expect(c.claim(key("c"), expiresAt: now + 61, now: now + 5) == .full)
        // Nothing was forgotten: both are still replays.
        #expect(c.claim(key("a"), expiresAt: now + 61, now: now + 5) == .replayed)
        #expect(c.claim(key("b"), expiresAt: now + 61, now: now + 5) == .replayed)
        #expect(c.count == 2)
    }

    @Test func expiredEntriesAreSweptToMakeRoom() {
        let c = MemoryReplayCache(capacity: 2, shards: 1)
        #expect(c.claim(key("a"), expiresAt: now + 10, now: now) == .fresh)
        #expect(c.claim(key("b"), expiresAt: now + 10, now: now) == .fresh)
        #expect(c.claim(key("c"), expiresAt: now + 30, now: now + 10) == .fresh)
        #expect(c.count == 1)
    }

    @Test func expiredEntryIsNotAReplay() {
        let c = MemoryReplayCache(capacity: 16, shards: 1)
        #expect(c.claim(key("a"), expiresAt: now + 10, now: now) == .fresh)
        #expect(c.claim(key("a"), expiresAt: now + 20, now: now + 9) == .replayed)
        #expect(c.claim(key("a"), expiresAt: now + 20, now: now + 10) == .fresh)
    }

    @Test func periodicSweepDropsExpiredEntriesBeforeCapacity() {
        let c = MemoryReplayCache(capacity: 100, shards: 1)
        for i in 0..<10 { _ = c.claim(key("k\(i)"), expiresAt: now + 5, now: now) }
        #expect(c.count == 10)
        _ = c.claim(key("late"), expiresAt: now + 100, now: now + 6)
        #expect(c.count == 1)
    }

    @Test func shardedCacheStillDetectsReplays() {
        let c = MemoryReplayCache(capacity: 1 << 10)
        for i in 0..<200 { #expect(c.claim(key("j\(i)"), expiresAt: now + 61, now: now) == .fresh) }
        for i in 0..<200 { #expect(c.claim(key("j\(i)"), expiresAt: now + 61, now: now + 1) == .replayed) }
    }

    @Test func idClaimedAgainAfterExpiryStaysRecorded() {
        // The first claim's expiry leaves the queue later; it must not take the second claim with it.
        let c = MemoryReplayCache(capacity: 16, shards: 1)
        #expect(c.claim(key("a"), expiresAt: now + 10, now: now) == .fresh)
        #expect(c.claim(key("a"), expiresAt: now + 40, now: now + 10) == .fresh)
        _ = c.claim(key("b"), expiresAt: now + 40, now: now + 11)
        #expect(c.claim(key("a"), expiresAt: now + 40, now: now + 12) == .replayed)
    }

    @Test func expiredIdsLeaveAFewPerClaimWithoutASweep() {
        let c = MemoryReplayCache(capacity: 1000, shards: 1)
        for i in 0..<100 { _ = c.claim(key("old\(i)"), expiresAt: now + 5, now: now) }
        _ = c.claim(key("new1"), expiresAt: now + 100, now: now + 6)
        // Each claim forgets a bounded number: the rest go with later claims, none is a replay.
        #expect(c.count > 1 && c.count < 101)
        for i in 0..<10 { _ = c.claim(key("more\(i)"), expiresAt: now + 100, now: now + 6) }
        #expect(c.count == 11)
        #expect(c.claim(key("old0"), expiresAt: now + 100, now: now + 6) == .fresh)
    }

    @Test func fullCacheStillFindsRoomBehindALongLivedId() {
        // An id with a long life at the front of the queue holds back the ones behind it; when the
        // cache is full, they are found anyway.
        let c = MemoryReplayCache(capacity: 3, shards: 1)
        #expect(c.claim(key("long"), expiresAt: now + 100, now: now) == .fresh)
        #expect(c.claim(key("s1"), expiresAt: now + 5, now: now) == .fresh)
        #expect(c.claim(key("s2"), expiresAt: now + 5, now: now) == .fresh)
        #expect(c.claim(key("next"), expiresAt: now + 100, now: now + 6) == .fresh)
        #expect(c.claim(key("long"), expiresAt: now + 100, now: now + 6) == .replayed)
    }
}
