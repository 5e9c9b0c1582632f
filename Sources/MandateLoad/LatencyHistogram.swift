/// A fixed-size log-linear histogram of nanosecond values (the HdrHistogram layout): values below
/// 256 ns are exact, above that each power of two is split into 128 linear buckets, so a recorded
/// value is off by at most 1/128 (0.8 %). Recording is an index computation and an increment:
/// no allocation after `init`.
public struct LatencyHistogram: Sendable {
    static let subBits = 8
    static let subCount = 1 << subBits          // 256 exact buckets
    static let half = subCount / 2              // 128 buckets per power of two above
    /// Values are clamped to 2^40 ns (about 18 minutes).
    static let maxShift = 40 - subBits
    public static let bucketCount = subCount + maxShift * half

    public private(set) var counts: [UInt64]
    public private(set) var total: UInt64 = 0
    public private(set) var min: UInt64 = .max
    public private(set) var max: UInt64 = 0
    private var sum: Double = 0

    public init() { counts = [UInt64](repeating: 0, count: Self.bucketCount) }

    @inline(__always)
    static func index(_ value: UInt64) -> Int {
        let v = Swift.min(value, (1 << 40) - 1)
        if v < UInt64(subCount) { return Int(v) }
        let msb = 63 - v.leadingZeroBitCount
        let shift = msb - (subBits - 1)
        let sub = Int(v >> UInt64(shift))       // in [half, subCount)
        return subCount + (shift - 1) * half + (sub - half)
    }

    /// The lowest and highest value that land in bucket `i`.
    public static func range(_ i: Int) -> (low: UInt64, high: UInt64) {
        if i < subCount { return (UInt64(i), UInt64(i)) }
        let shift = (i - subCount) / half + 1
        let sub = UInt64((i - subCount) % half + half)
        return (sub << UInt64(shift), ((sub + 1) << UInt64(shift)) - 1)
    }

    @inline(__always)
    public mutating func record(_ nanos: UInt64) {
        counts.withUnsafeMutableBufferPointer { $0[Self.index(nanos)] &+= 1 }
        total &+= 1
        sum += Double(nanos)
        if nanos < min { min = nanos }
        if nanos > max { max = nanos }
    }

    public mutating func merge(_ other: LatencyHistogram) {
        for i in 0 ..< counts.count { counts[i] &+= other.counts[i] }
        total &+= other.total
        sum += other.sum
        min = Swift.min(min, other.min)
        max = Swift.max(max, other.max)
    }

    public var mean: Double { total == 0 ? 0 : sum / Double(total) }

    /// The value at quantile `q` (0...1): the midpoint of the bucket holding the ceil(q·n)-th value,
    /// clamped to the observed min and max.
    public func value(atQuantile q: Double) -> UInt64 {
        guard total > 0 else { return 0 }
        if q >= 1 { return max }
        let rank = Swift.max(1, UInt64((q * Double(total)).rounded(.up)))
        var seen: UInt64 = 0
        for (i, c) in counts.enumerated() where c > 0 {
            seen += c
            if seen >= rank {
                let (lo, hi) = Self.range(i)
                return Swift.min(Swift.max(lo + (hi - lo) / 2, min), max)
            }
        }
        return max
    }

    /// Non-empty buckets as (low, high, count), for plots.
    public var buckets: [(low: UInt64, high: UInt64, count: UInt64)] {
        counts.enumerated().compactMap { i, c in
            guard c > 0 else { return nil }
            let r = Self.range(i)
            return (r.low, r.high, c)
        }
    }
}
