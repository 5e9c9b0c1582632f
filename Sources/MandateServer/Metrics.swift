import MandateCore
import Synchronization

/// Counters for /metrics (Prometheus text format 0.0.4), one set per event loop (an uncontended
/// lock per decision), summed when scraped.
final class LoopMetrics: Sendable {
    /// Seconds; Prometheus buckets are cumulative (le), with +Inf last.
    static let bounds: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    struct Outcome: Hashable {
        var forwarded: Bool
        var reason: String?
    }

    struct Counts {
        var requests: [Outcome: Int] = [:]
        var buckets = [Int](repeating: 0, count: LoopMetrics.bounds.count + 1)
        var latencySum = 0.0
    }

    let counts = Mutex(Counts())

    func record(forwarded: Bool, reason: String?, seconds: Double) {
        counts.withLock { c in
            c.requests[Outcome(forwarded: forwarded, reason: reason), default: 0] += 1
            let i = Self.bounds.firstIndex { seconds <= $0 } ?? Self.bounds.count
            c.buckets[i] += 1
            c.latencySum += seconds
        }
    }
}

/// The exposition: requests by decision and reason, the decision latency histogram, and the
/// verifier's caches.
public struct MetricsText {
    /// `caches`: more caches' lookups (metric name, help, hits, misses).
    static func render(loops: [LoopMetrics], chainCache: (hits: Int, misses: Int), connections: Int,
                       pendingApprovals: Int? = nil, caches: [(String, String, Int, Int)] = []) -> String {
        var total = LoopMetrics.Counts()
        for l in loops {
            let c = l.counts.withLock { $0 }
            for (k, v) in c.requests { total.requests[k, default: 0] += v }
            for i in total.buckets.indices { total.buckets[i] += c.buckets[i] }
            total.latencySum += c.latencySum
        }
        var s = "# HELP mandate_requests_total Requests decided, by decision and reason code.\n"
        s += "# TYPE mandate_requests_total counter\n"
        let lines = total.requests.map { k, v in
            "mandate_requests_total{decision=\"\(k.forwarded ? "forward" : "refuse")\",reason=\"\(k.reason ?? "")\"} \(v)\n"
        }
        s += lines.sorted().joined()
        s += "# HELP mandate_request_duration_seconds From the request head to the end of the answer.\n"
        s += "# TYPE mandate_request_duration_seconds histogram\n"
        var cumulative = 0
        for (i, b) in LoopMetrics.bounds.enumerated() {
            cumulative += total.buckets[i]
            s += "mandate_request_duration_seconds_bucket{le=\"\(b)\"} \(cumulative)\n"
        }
        cumulative += total.buckets[LoopMetrics.bounds.count]
        s += "mandate_request_duration_seconds_bucket{le=\"+Inf\"} \(cumulative)\n"
        s += "mandate_request_duration_seconds_sum \(total.latencySum)\n"
        s += "mandate_request_duration_seconds_count \(cumulative)\n"
        s += "# HELP mandate_chain_cache_lookups_total Verified-chain cache lookups, by result (since the last reload).\n"
        s += "# TYPE mandate_chain_cache_lookups_total counter\n"
        s += "mandate_chain_cache_lookups_total{result=\"hit\"} \(chainCache.hits)\n"
        s += "mandate_chain_cache_lookups_total{result=\"miss\"} \(chainCache.misses)\n"
        for (name, help, hits, misses) in caches {
            s += "# HELP \(name) \(help)\n# TYPE \(name) counter\n"
            s += "\(name){result=\"hit\"} \(hits)\n\(name){result=\"miss\"} \(misses)\n"
        }
        s += "# HELP mandate_connections Open client connections.\n# TYPE mandate_connections gauge\n"
        s += "mandate_connections \(connections)\n"
        if let pendingApprovals {
            s += "# HELP mandate_approvals_pending Approvals waiting for a principal's answer.\n# TYPE mandate_approvals_pending gauge\n"
            s += "mandate_approvals_pending \(pendingApprovals)\n"
        }
        return s
    }
}
