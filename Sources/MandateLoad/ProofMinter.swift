import Glibc
import MandateCore
import MandateCrypto

/// Minter threads that sign a fresh DPoP proof for every request and queue the finished request
/// bytes; the I/O threads only take them. A bounded queue: minters block when it is full, and an
/// I/O thread that finds it empty is woken through its eventfd by the next push.
public final class ProofMinter: @unchecked Sendable {  // shared state behind `lock`
    public struct Stats: Sendable {
        /// Seconds spent signing and building requests, summed over minter threads.
        public var busySeconds: Double = 0
        /// Wall-clock seconds minters waited for room in a full queue, summed over minter threads.
        public var blockedSeconds: Double = 0
        public var minted: Int = 0
    }

    private let identities: [AgentIdentity]
    private let proofs: [ProofTemplate]
    private let prefixes: [[UInt8]]
    private let suffix: [UInt8]
    private let template: RequestTemplate
    private let capacity: Int
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let notFull = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var ring: [[UInt8]]
    private var head = 0
    private var count = 0
    private var stopped = false
    private var waiters: [Int32] = []
    private var threads: [pthread_t] = []
    private var stats: [Stats]
    public let minterCount: Int

    public init(identities: [AgentIdentity], template: RequestTemplate, minters: Int, capacity: Int) {
        precondition(!identities.isEmpty && minters > 0 && capacity > 0)
        self.identities = identities; self.template = template; self.capacity = capacity; minterCount = minters
        prefixes = identities.map { template.prefix(for: $0) }
        proofs = identities.map { ProofTemplate(identity: $0, method: template.method, htu: template.htu) }
        suffix = template.suffix
        ring = [[UInt8]](repeating: [], count: capacity)
        stats = [Stats](repeating: Stats(), count: minters)
        pthread_mutex_init(lock, nil)
        pthread_cond_init(notFull, nil)
    }

    deinit {
        pthread_mutex_destroy(lock); pthread_cond_destroy(notFull)
        lock.deallocate(); notFull.deallocate()
    }

    public func start() {
        for m in 0 ..< minterCount {
            threads.append(startThread { [self] in self.mintLoop(m) })
        }
    }

    /// Stops and joins the minter threads; returns their statistics.
    public func stop() -> Stats {
        pthread_mutex_lock(lock)
        stopped = true
        pthread_cond_broadcast(notFull)
        pthread_mutex_unlock(lock)
        for t in threads { pthread_join(t, nil) }
        threads = []
        return stats.reduce(into: Stats()) {
            $0.busySeconds += $1.busySeconds; $0.blockedSeconds += $1.blockedSeconds; $0.minted += $1.minted
        }
    }

    /// Waits (up to `timeout` seconds) until `n` requests are queued, so a run starts with a full queue.
    public func waitQueued(_ n: Int, timeout: Double) {
        let deadline = monotonicNow() + timeout
        while monotonicNow() < deadline {
            pthread_mutex_lock(lock)
            let c = count
            pthread_mutex_unlock(lock)
            if c >= Swift.min(n, capacity - 16) { return }
            usleep(2000)
        }
    }

    /// Moves up to `max` requests into `out` without blocking. When none is available, `wakeFD`
    /// (an eventfd) is written on the next push.
    public func take(into out: inout [[UInt8]], max: Int, wakeFD: Int32) {
        pthread_mutex_lock(lock)
        let n = Swift.min(max, count)
        for _ in 0 ..< n {
            out.append(ring[head])
            ring[head] = []
            head = (head + 1) % capacity
        }
        count -= n
        if n > 0 { pthread_cond_broadcast(notFull) } else if !waiters.contains(wakeFD) { waiters.append(wakeFD) }
        pthread_mutex_unlock(lock)
    }

    private func mintLoop(_ m: Int) {
        let batchSize = 16
        var batch: [[UInt8]] = []
        batch.reserveCapacity(batchSize)
        var next = m  // minters interleave over the identities
        var busy = 0.0, blocked = 0.0, minted = 0
        var ids = ProofIDs()
        while true {
            let t0 = cpuNow()
            let iat = Int64(time(nil))
            for _ in 0 ..< batchSize {
                let i = next % identities.count
                next += minterCount
                var req = [UInt8]()
                req.reserveCapacity(prefixes[i].count + 600 + suffix.count)
                req += prefixes[i]
                req += "DPoP: ".utf8
                proofs[i].append(jti: ids.next(), issuedAt: iat, to: &req)
                req += "\r\n".utf8
                req += suffix
                batch.append(req)
            }
            busy += cpuNow() - t0
            minted += batch.count
            pthread_mutex_lock(lock)
            if !stopped && count + batch.count > capacity {
                let w0 = monotonicNow()
                while !stopped && count + batch.count > capacity { pthread_cond_wait(notFull, lock) }
                blocked += monotonicNow() - w0
            }
            if stopped {
                stats[m] = Stats(busySeconds: busy, blockedSeconds: blocked, minted: minted)
                pthread_mutex_unlock(lock)
                return
            }
            for r in batch {
                ring[(head + count) % capacity] = r
                count += 1
            }
            let wake = waiters
            waiters.removeAll(keepingCapacity: true)
            pthread_mutex_unlock(lock)
            batch.removeAll(keepingCapacity: true)
            var one: UInt64 = 1
            for fd in wake { _ = write(fd, &one, 8) }
        }
    }
}

/// A DPoP proof with everything but `jti` and `iat` computed once per identity: the same bytes as
/// `Mint.proof` (RFC 9449 §4.2), for a fraction of the work besides the signature.
struct ProofTemplate: Sendable {
    let key: SigningKey
    /// Ed25519 keys sign through an expanded key: half the work of `SigningKey.sign`.
    let signer: Ed25519.Signer?
    /// base64url of the protected header.
    let header: [UInt8]
    let method: String, htu: String, ath: String

    init(identity: AgentIdentity, method: String, htu: String) {
        key = identity.key
        if case .ed25519(let seed, _) = key { signer = Ed25519.Signer(seed: seed) } else { signer = nil }
        self.method = method; self.htu = htu
        ath = Base64URL.encode(SHA256.hash(Array(identity.leaf.utf8)))
        let h = JSONObject(members: [("alg", .string(key.algorithm.rawValue)), ("typ", .string(DPoPProof.mediaType)),
                                     ("jwk", .object(key.publicJWK))])
        var b: [UInt8] = []
        Base64URL.encode(h.serialized(), into: &b)
        header = b
    }

    func append(jti: String, issuedAt: Int64, to out: inout [UInt8]) {
        let claims = JSONObject(members: [("jti", .string(jti)), ("htm", .string(method)), ("htu", .string(htu)),
                                          ("iat", .integer(issuedAt)), ("ath", .string(ath))])
        let start = out.count
        out += header
        out.append(UInt8(ascii: "."))
        Base64URL.encode(claims.serialized(), into: &out)
        let sig = signer?.sign(out[start...]) ?? key.sign(out[start...])
        out.append(UInt8(ascii: "."))
        Base64URL.encode(sig, into: &out)
    }
}

/// Unique proof ids without a syscall each: 12 random bytes per minter, then a counter.
struct ProofIDs {
    private var raw: [UInt8] = Random.bytes(12) + [UInt8](repeating: 0, count: 6)
    private var counter: UInt64 = 0

    mutating func next() -> String {
        counter &+= 1
        for k in 0 ..< 6 { raw[12 + k] = UInt8(truncatingIfNeeded: counter >> (8 * UInt64(k))) }
        return Base64URL.encode(raw)
    }
}

/// The calling thread's CPU time in seconds.
func cpuNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

func monotonicNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Runs `body` on a new pthread; returns its handle for joining.
func startThread(_ body: @escaping @Sendable () -> Void) -> pthread_t {
    final class Box: @unchecked Sendable { let body: @Sendable () -> Void; init(_ b: @escaping @Sendable () -> Void) { body = b } }
    var tid = pthread_t()
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    pthread_create(&tid, nil, { p in
        Unmanaged<Box>.fromOpaque(p!).takeRetainedValue().body()
        return nil
    }, box)
    return tid
}
