import Glibc
import MandateCore

/// A finished run: the plan, the merged tally, and what the load generator itself cost.
public struct LoadResult: Sendable {
    public var plan: LoadPlan
    public var tally: LoadTally
    /// nil with `--no-auth`.
    public var minting: MintingSummary?
    /// Each identity's one proof sent on every request (`--reuse-proof`).
    public var reusedProofs = false
    /// CPU seconds (user + system) the load generator used during the run, all threads.
    public var cpuSeconds: Double
    public var wallSeconds: Double

    public struct MintingSummary: Sendable {
        public var identities: Int
        public var algorithm: String
        public var minters: Int
        public var stats: ProofMinter.Stats
    }

    public var completed: UInt64 { tally.histogram.total }
    public var requestsPerSecond: Double { Double(completed) / plan.duration }
    public var starvedFraction: Double { tally.mintStarvedSeconds / wallSeconds }
    /// Fraction of the minters' wall time spent signing rather than waiting for queue room.
    public var minterSaturation: Double? {
        guard let m = minting else { return nil }
        return max(0, 1 - m.stats.blockedSeconds / (wallSeconds * Double(m.minters)))
    }

    /// Why this run measured the load generator rather than the target, when it did.
    public var bottleneckWarnings: [String] {
        var w: [String] = []
        if let sat = minterSaturation, starvedFraction > 0.02 || (sat > 0.95 && shortOfRate) {
            w.append("""
            minting was the bottleneck: connections waited for a signed request \(pct(starvedFraction)) of the run \
            and the minters were \(pct(sat)) busy; add --minters, use EdDSA agents, or give the load generator more CPU
            """)
        }
        if case .open(let rate) = plan.mode, shortOfRate {
            w.append("""
            achieved \(fmt(requestsPerSecond)) of \(fmt(rate)) requests/s; \(tally.unsentAtEnd) due requests were never sent \
            (more connections with -c, or the target is saturated)
            """)
        }
        return w
    }

    private var shortOfRate: Bool {
        if case .open(let rate) = plan.mode { return requestsPerSecond < 0.95 * rate }
        return false
    }
}

public enum LoadRun {
    /// Runs `plan`; with `identities`, every request carries a fresh DPoP proof minted on `minters` threads.
    /// With `reuseProofs`, each identity signs one proof up front and sends it on every request: the
    /// same bytes without the signing cost, for targets that do not verify (a plain nginx).
    public static func run(_ plan: LoadPlan, identities: [AgentIdentity]?, minters: Int, queueCapacity: Int = 8192,
                           reuseProofs: Bool = false) throws(Reason) -> LoadResult {
        guard let address = resolve(host: plan.host, port: plan.port) else {
            throw Reason("cannot resolve \(plan.host):\(plan.port)")
        }
        signal(SIGPIPE, SIG_IGN)
        var fixed = [plan.template.plainRequest]
        if reuseProofs, let identities {
            let iat = Int64(time(nil))
            fixed = identities.map { id in
                var r = plan.template.prefix(for: id) + Array("DPoP: ".utf8)
                ProofTemplate(identity: id, method: plan.template.method, htu: plan.template.htu)
                    .append(jti: Mint.newID(), issuedAt: iat, to: &r)
                return r + Array("\r\n".utf8) + plan.template.suffix
            }
        }
        let minter = reuseProofs ? nil : identities.map {
            ProofMinter(identities: $0, template: plan.template, minters: minters, capacity: queueCapacity)
        }
        minter?.start()
        minter?.waitQueued(queueCapacity, timeout: 3)
        let threads = max(1, min(plan.threads, plan.connections))
        var rate: Double? = nil
        if case .open(let r) = plan.mode { rate = r / Double(threads) }
        let loops = (0 ..< threads).map { t in
            LoadLoop(plan: plan, address: address, connections: plan.connections / threads + (t < plan.connections % threads ? 1 : 0),
                     rate: rate, minter: minter, fixedRequests: fixed)
        }
        let cpu0 = processCPU()
        let t0 = monotonicNow()
        let others = loops.dropFirst().map { loop in startThread { loop.run(t0: t0) } }
        loops[0].run(t0: t0)
        for t in others { pthread_join(t, nil) }
        let wall = monotonicNow() - t0
        let cpu = processCPU() - cpu0
        let stats = minter?.stop()
        var tally = LoadTally()
        for l in loops { tally.merge(l.tally) }
        let summary = reuseProofs ? nil : identities.map {
            LoadResult.MintingSummary(identities: $0.count, algorithm: $0[0].key.algorithm.rawValue, minters: minters,
                                      stats: stats ?? ProofMinter.Stats())
        }
        var result = LoadResult(plan: plan, tally: tally, minting: summary, cpuSeconds: cpu, wallSeconds: wall)
        result.reusedProofs = reuseProofs && identities != nil
        return result
    }

    static func processCPU() -> Double {
        var ru = rusage()
        getrusage(RUSAGE_SELF.rawValue, &ru)
        return Double(ru.ru_utime.tv_sec) + Double(ru.ru_utime.tv_usec) * 1e-6
            + Double(ru.ru_stime.tv_sec) + Double(ru.ru_stime.tv_usec) * 1e-6
    }
}

func pct(_ x: Double) -> String { String(format1: x * 100) + " %" }

func fmt(_ x: Double) -> String { String(format1: x) }

extension String {
    /// One decimal place, without Foundation.
    init(format1 x: Double) {
        guard x.isFinite else { self = "-"; return }
        let r = (x * 10).rounded() / 10
        let whole = Int64(r.rounded(.towardZero))
        let tenth = Int64((abs(r - Double(whole)) * 10).rounded())
        self = (r < 0 && whole == 0 ? "-" : "") + "\(whole).\(tenth)"
    }
}
