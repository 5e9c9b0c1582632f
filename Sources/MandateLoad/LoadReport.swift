import MandateCore

/// The printed table and the JSON document of a run.
public enum LoadReport {
    public static let quantiles: [(name: String, q: Double)] = [
        ("p50", 0.50), ("p75", 0.75), ("p90", 0.90), ("p99", 0.99), ("p99.9", 0.999), ("p99.99", 0.9999),
    ]

    public static func table(_ r: LoadResult, url: String) -> String {
        let p = r.plan
        let h = r.tally.histogram
        var s = ""
        let mode: String
        switch p.mode {
        case .closed: mode = "closed loop"
        case .open(let rate): mode = "open loop at \(fmt(rate)) requests/s"
        }
        s += "target     \(p.template.method) \(url)\n"
        s += "mode       \(mode), \(p.connections) connections, \(fmt(p.duration)) s"
        s += (p.warmup > 0 ? " after \(fmt(p.warmup)) s warm-up" : "") + ", \(p.threads) I/O thread(s)\n"
        if let m = r.minting {
            s += "auth       DPoP, a fresh proof per request: \(m.identities) \(m.algorithm) agents, \(m.minters) minter thread(s)\n"
        } else if r.reusedProofs {
            s += "auth       DPoP headers, one proof per identity sent again and again (--reuse-proof; not verifiable)\n"
        } else {
            s += "auth       none (--no-auth)\n"
        }
        s += "requests   \(r.completed) completed, \(fmt(r.requestsPerSecond)) requests/s\n"
        s += "latency    " + quantiles.map { "\($0.name) \(ms(h.value(atQuantile: $0.q)))" }.joined(separator: "  ")
        s += "  max \(ms(h.max))  (ms\(isOpen(p) ? ", from the time each request was due" : ""))\n"
        let statuses = r.tally.statuses.enumerated().filter { $0.element > 0 }.map { "\($0.offset): \($0.element)" }
        s += "statuses   " + (statuses.isEmpty ? "none" : statuses.joined(separator: ", ")) + "\n"
        let failures = ConnectionFailure.allCases.filter { r.tally.failures[$0.rawValue] > 0 }
            .map { "\($0.name) \(r.tally.failures[$0.rawValue])" }
        s += "errors     " + (failures.isEmpty ? "none" : failures.joined(separator: ", "))
        s += "; \(r.tally.reconnects) reconnects\n"
        if let m = r.minting {
            let perProof = m.stats.minted > 0 ? m.stats.busySeconds / Double(m.stats.minted) * 1e6 : 0
            s += "minting    \(fmt(perProof)) µs CPU per signed request, minters \(pct(r.minterSaturation ?? 0)) busy, "
            s += "queue empty \(pct(r.starvedFraction)) of the run\n"
        }
        s += "loadgen    \(fmt(r.cpuSeconds / r.wallSeconds * 100)) % of one CPU (\(fmt(r.cpuSeconds)) s CPU in \(fmt(r.wallSeconds)) s)\n"
        for w in r.bottleneckWarnings { s += "warning    \(w)\n" }
        return s
    }

    public static func json(_ r: LoadResult, url: String) -> JSONObject {
        let p = r.plan
        let h = r.tally.histogram
        var mode: [(String, JSONValue)] = []
        switch p.mode {
        case .closed: mode = [("mode", .string("closed"))]
        case .open(let rate): mode = [("mode", .string("open")), ("rate", .number(rate))]
        }
        var latency: [(String, JSONValue)] = quantiles.map { ($0.name, .number(us(h.value(atQuantile: $0.q)))) }
        latency += [("min", .number(us(h.total > 0 ? h.min : 0))), ("max", .number(us(h.max))), ("mean", .number(h.mean / 1000))]
        let buckets = h.buckets.map { JSONValue.array([.integer(Int64($0.low)), .integer(Int64($0.high)), .integer(Int64($0.count))]) }
        let statuses = r.tally.statuses.enumerated().filter { $0.element > 0 }.map { (String($0.offset), JSONValue.integer(Int64($0.element))) }
        let failures = ConnectionFailure.allCases.map { ($0.name, JSONValue.integer(Int64(r.tally.failures[$0.rawValue]))) }
        var members: [(String, JSONValue)] = [
            ("url", .string(url)), ("method", .string(p.template.method)),
        ] + mode + [
            ("connections", .integer(Int64(p.connections))), ("threads", .integer(Int64(p.threads))),
            ("duration_s", .number(p.duration)), ("warmup_s", .number(p.warmup)),
            ("auth", .string(r.minting != nil ? "dpop" : r.reusedProofs ? "dpop-reused" : "none")),
            ("completed", .integer(Int64(r.completed))), ("requests_per_second", .number(r.requestsPerSecond)),
            ("latency_us", .object(JSONObject(members: latency))),
            ("histogram_ns", .object(JSONObject(members: [
                ("layout", .string("[low, high, count] of each non-empty bucket")), ("buckets", .array(buckets)),
            ]))),
            ("statuses", .object(JSONObject(members: statuses))),
            ("errors", .object(JSONObject(members: failures))),
            ("reconnects", .integer(Int64(r.tally.reconnects))),
            ("loadgen_cpu_seconds", .number(r.cpuSeconds)), ("wall_seconds", .number(r.wallSeconds)),
            ("loadgen_cpu_fraction", .number(r.cpuSeconds / r.wallSeconds)),
        ]
        if case .open = p.mode {
            members += [("due", .integer(Int64(r.tally.due))), ("unsent_at_end", .integer(Int64(r.tally.unsentAtEnd)))]
        }
        if let m = r.minting {
            members.append(("minting", .object(JSONObject(members: [
                ("identities", .integer(Int64(m.identities))), ("algorithm", .string(m.algorithm)),
                ("minters", .integer(Int64(m.minters))), ("minted", .integer(Int64(m.stats.minted))),
                ("cpu_us_per_request", .number(m.stats.minted > 0 ? m.stats.busySeconds / Double(m.stats.minted) * 1e6 : 0)),
                ("minter_saturation", .number(r.minterSaturation ?? 0)),
                ("queue_empty_fraction", .number(r.starvedFraction)),
            ]))))
        }
        members.append(("warnings", .array(r.bottleneckWarnings.map { .string($0) })))
        return JSONObject(members: members)
    }

    static func isOpen(_ p: LoadPlan) -> Bool { if case .open = p.mode { true } else { false } }
    static func us(_ ns: UInt64) -> Double { (Double(ns) / 10).rounded() / 100 }
    static func ms(_ ns: UInt64) -> String {
        let v = Double(ns) / 1e6
        if v >= 100 { return String(format1: v) }
        // Three decimals below 100 ms.
        let thousandths = Int64((v * 1000).rounded())
        let frac = String(thousandths % 1000)
        return "\(thousandths / 1000)." + String(repeating: "0", count: 3 - frac.count) + frac
    }
}
