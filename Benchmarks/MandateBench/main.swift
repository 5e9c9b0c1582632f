// The hot-path instrument: each verification stage beside the bare signature verifications it
// must pay for, measured interleaved in the same run (round by round, so that drift on a noisy
// machine hits both), as nanoseconds per operation and as ratios. Table, and JSON with --json.
//   swift build -c release && .build/release/mandate-bench [--quick] [--json FILE] [--only STAGE] [--n N]
import MandateCore
import MandateCrypto
import MandateHTTP
#if canImport(Glibc)
import Glibc
#endif

@inline(__always) func nowNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

var quick = false
var jsonPath: String? = nil
var only: String? = nil  // --only SUBSTRING: run one stage (for profilers)
var iterationsOverride: Int? = nil
var argv = CommandLine.arguments.dropFirst()
while let a = argv.popFirst() {
    switch a {
    case "--quick": quick = true
    case "--json": jsonPath = argv.popFirst()
    case "--only": only = argv.popFirst()
    case "--n": iterationsOverride = argv.popFirst().flatMap { Int($0) }
    default: print("usage: mandate-bench [--quick] [--json FILE] [--only STAGE] [--n ITERATIONS]"); exit(2)
    }
}
let n = iterationsOverride ?? (quick ? 20 : 400)  // operations per round and stage
let rounds = quick ? 2 : 15
@MainActor func selected(_ name: String) -> Bool { only.map { name.contains($0) } ?? true }

struct Row {
    var name: String
    var nsPerOp: Double
    var baselineNs: Double?
    var ratio: Double?
    var target: String
    var met: Bool?
    var note: String
}
var rows: [Row] = []

func median(_ xs: [Double]) -> Double { let s = xs.sorted(); return s.isEmpty ? .nan : s[s.count / 2] }

/// Times `body` over `count` calls; ns per call.
func timeBlock(_ count: Int, _ body: (Int) -> Void) -> Double {
    let t0 = nowNanos()
    for i in 0..<count { body(i) }
    return Double(nowNanos() - t0) / Double(count)
}

/// A stage whose inputs are used once (fresh proofs): each call's input is touched first, outside
/// the timing, as a request just read from a socket is in cache; then the call alone is timed.
func timeEach(_ count: Int, warm: (Int) -> Void, _ body: (Int) -> Void) -> Double {
    var total: UInt64 = 0
    for i in 0..<count {
        warm(i)
        let t0 = nowNanos()
        body(i)
        total += nowNanos() - t0
    }
    return Double(total) / Double(count)
}

// MARK: Identities and the verifier

// Alice (Ed25519 principal) → A (ES256) → B (Ed25519) → leaf agent (Ed25519), and single-link agents.
let alice = SigningKey.generate(.edDSA)
let agentA = SigningKey.generate(.es256)
let agentB = SigningKey.generate(.edDSA)
let edAgent = SigningKey.generate(.edDSA)
let ecAgent = SigningKey.generate(.es256)
let origin = "https://api.example.com"
var config = ProxyConfig()
config.publicOrigin = origin
config.principals = [ProxyConfig.Principal(did: alice.did, name: "Alice")]
config.routes = (0..<99).map { ProxyConfig.Route(prefix: "/r\($0)/", methods: ["GET"], scopes: ["s\($0)"], effect: .allow) }
    + [ProxyConfig.Route(prefix: "/invoices/", methods: ["GET"], scopes: ["invoices:read"], effect: .allow)]
config.replayCacheSize = 1 << 22
config.chainCacheSize = 1 << 16
let verifier = try! Verifier(config: config)
let t0 = Int64(time(nil))

@MainActor func link(_ from: SigningKey, _ to: SigningKey, parent: String?) -> String {
    Mint.delegation(key: from, to: to.did, jkt: to.thumbprint, scope: "invoices:read", issuedAt: t0, ttl: 3600,
                    parent: parent, audience: nil, maxDepth: nil, jti: Mint.newID())
}

@MainActor func proof(_ key: SigningKey, leaf: String) -> String {
    Mint.proof(key: key, method: "GET", htu: origin + "/invoices/42", accessToken: leaf, issuedAt: t0, jti: Mint.newID())
}

func head(leaf: String, ancestors: [String], proof: String) -> HTTPRequestHead {
    var h = [HTTPHeader("Host", "api.example.com"), HTTPHeader("User-Agent", "agent-sdk/1.4"),
             HTTPHeader("Accept", "application/json"), HTTPHeader("Authorization", "DPoP " + leaf), HTTPHeader("DPoP", proof)]
    if !ancestors.isEmpty { h.append(HTTPHeader("Agent-Delegation", ancestors.joined(separator: ", "))) }
    return HTTPRequestHead(method: "GET", target: "/invoices/42?expand=lines", headers: h)
}

/// Reads every header byte: the request as it would be right after the parser made it.
@inline(never) func touch(_ h: HTTPRequestHead) {
    var x: UInt8 = 0
    for f in h.headers { for b in f.value.utf8 { x ^= b } }
    if x == 0x5a && h.method == "" { print("") }
}

@MainActor func forward(_ h: HTTPRequestHead) {
    if case .failure(let r) = verifier.verify(h, now: t0) { fatalError("benchmark request refused: \(r.denial.description)") }
}

// MARK: The bare verifications

let msg = Array(repeating: UInt8(ascii: "a"), count: 300)
let edSig = edAgent.sign(msg), ecSig = ecAgent.sign(msg)
guard case .ed25519(_, let edPub) = edAgent, case .p256(_, let ecPub) = ecAgent else { fatalError() }
func bareEd25519(_: Int) { precondition(Ed25519.verify(signature: edSig, message: msg, publicKey: edPub)) }
func bareP256(_: Int) { precondition(ecPub.verify(signature: ecSig, message: msg)) }
var bareEdSamples: [Double] = [], bareECSamples: [Double] = []

/// A stage measured round by round beside its baseline; the ratio is the median of per-round ratios.
@MainActor func paired(_ name: String, target: String, limit: Double, note: String, baseline: () -> Double,
            stage: () -> Double) {
    guard selected(name) else { return }
    _ = baseline(); _ = stage()  // warm-up
    var s: [Double] = [], b: [Double] = [], r: [Double] = []
    for _ in 0..<rounds {
        let bn = baseline(), sn = stage()
        b.append(bn); s.append(sn); r.append(sn / bn)
    }
    let ratio = median(r)
    rows.append(Row(name: name, nsPerOp: median(s), baselineNs: median(b), ratio: ratio, target: target,
                    met: ratio <= limit, note: note))
}

for (name, alg) in [("bare libsodium crypto_sign_verify_detached", 0), ("bare OpenSSL P-256 verify", 1)] where selected(name) {
    var samples: [Double] = []
    for _ in 0..<rounds { samples.append(timeBlock(n, alg == 0 ? bareEd25519 : bareP256)) }
    rows.append(Row(name: name, nsPerOp: median(samples), baselineNs: nil, ratio: nil, target: "", met: nil,
                    note: "the physical limit"))
}

// (a), (b): a chain seen before, and a fresh proof each time.
for (name, agent, alg, label) in [("(a) cached chain + Ed25519 proof", edAgent, 0, "bare Ed25519"),
                                   ("(b) cached chain + ES256 proof", ecAgent, 1, "bare P-256")] where selected(name) {
    let leaf = link(alice, agent, parent: nil)
    let heads = (0..<(n * (rounds + 1) + 1)).map { _ in head(leaf: leaf, ancestors: [], proof: proof(agent, leaf: leaf)) }
    forward(heads[heads.count - 1])  // the chain is now cached
    var next = 0
    paired(name, target: "≤ 1.10 × \(label)", limit: 1.10, note: "whole pipeline: 1 signature",
           baseline: { timeBlock(n, alg == 0 ? bareEd25519 : bareP256) },
           stage: {
               defer { next += n }
               return timeEach(n, warm: { touch(heads[next + $0]) }) { forward(heads[next + $0]) }
           })
}

// (f): (a) with the agent registry: 10,000 registered agents and 10,000 revoked jtis, checked
// on every request (cached chain or not) from the in-memory view.
let registryName = "(f) cached chain + Ed25519 proof, registry of 10k agents"
if selected(registryName) {
    var view = RegistryView(anchors: [alice.did])
    for i in 0..<10_000 {
        view.agents["did:key:z6MkAgent\(i)"] = i % 2 == 0 ? .active : .suspended
        view.revokedDelegations.insert("jti-\(i)")
    }
    view.agents[edAgent.did] = .active
    let registered = try! Verifier(config: config, resolvers: Verifier.Resolvers(registry: LiveRegistry(view)))
    let leaf = link(alice, edAgent, parent: nil)
    let heads = (0..<(n * (rounds + 1) + 1)).map { _ in head(leaf: leaf, ancestors: [], proof: proof(edAgent, leaf: leaf)) }
    func check(_ h: HTTPRequestHead) {
        if case .failure(let r) = registered.verify(h, now: t0) { fatalError("benchmark request refused: \(r.denial.description)") }
    }
    check(heads[heads.count - 1])
    var next = 0
    paired(registryName, target: "≤ 1.10 × bare Ed25519", limit: 1.10, note: "(a) plus the revocation view",
           baseline: { timeBlock(n, bareEd25519) },
           stage: {
               defer { next += n }
               return timeEach(n, warm: { touch(heads[next + $0]) }) { check(heads[next + $0]) }
           })
}

// (c): a cold 3-link chain (Ed25519, ES256, Ed25519 links) with an Ed25519 proof: 4 signatures.
let coldName = "(c) cold 3-link chain + proof"
if selected(coldName) {
    let heads = (0..<(n * (rounds + 1))).map { _ -> HTTPRequestHead in
        let l1 = link(alice, agentA, parent: nil), l2 = link(agentA, agentB, parent: l1), l3 = link(agentB, edAgent, parent: l2)
        return head(leaf: l3, ancestors: [l1, l2], proof: proof(edAgent, leaf: l3))
    }
    var next = 0
    paired(coldName, target: "≤ 1.15 × (3 Ed25519 + 1 P-256)", limit: 1.15,
           note: "Alice(Ed25519) → A(ES256) → B(Ed25519) → agent, Ed25519 proof",
           baseline: { 3 * timeBlock(n / 2, bareEd25519) + timeBlock(n / 2, bareP256) },
           stage: {
               defer { next += n }
               return timeEach(n, warm: { touch(heads[next + $0]) }) { forward(heads[next + $0]) }
           })
}

/// A stage with an absolute bound in nanoseconds.
@MainActor func absolute(_ name: String, limitNs: Double?, note: String, count: Int, _ body: (Int) -> Void) {
    guard selected(name) else { return }
    _ = timeBlock(count, body)
    var samples: [Double] = []
    for _ in 0..<rounds { samples.append(timeBlock(count, body)) }
    let ns = median(samples)
    rows.append(Row(name: name, nsPerOp: ns, baselineNs: nil, ratio: nil,
                    target: limitNs.map { "< \(Int($0)) ns" } ?? "", met: limitNs.map { ns < $0 }, note: note))
}

// (d): policy against 100 routes.
do {
    let policy = RoutePolicy(routes: config.routes)
    let chain = VerifiedChain(principal: alice.did, agent: edAgent.did, dids: [alice.did, edAgent.did], scopes: ["invoices:read"],
                              proofKeyThumbprint: "", notBefore: t0, expiresAt: t0 + 3600, ancestry: [])
    absolute("(d) policy, 100 routes", limitNs: 1000, note: "longest prefix, method, scopes", count: n * 20) { _ in
        precondition(policy.decide(method: "GET", path: "/invoices/42", chain: chain).1 == nil)
    }
}

// (e): parsing a typical agent request head with its chain, with a reused parser.
do {
    let l1 = link(alice, agentA, parent: nil), l2 = link(agentA, agentB, parent: l1), l3 = link(agentB, edAgent, parent: l2)
    var text = "GET /invoices/42?expand=lines HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: agent-sdk/1.4\r\n"
    text += "Accept: application/json\r\nAccept-Encoding: gzip\r\nTraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
    text += "Authorization: DPoP \(l3)\r\nDPoP: \(proof(edAgent, leaf: l3))\r\nAgent-Delegation: \(l1), \(l2)\r\n\r\n"
    let bytes = Array(text.utf8)
    var parser = HTTPRequestParser()
    absolute("(e) parse request head (\(bytes.count) bytes)", limitNs: 2000, note: "RFC 9112 parser, reused", count: n * 20) { _ in
        bytes.withUnsafeBytes { buf in
            var offset = 0
            while true {
                let (event, used) = parser.parse(UnsafeRawBufferPointer(rebasing: buf[offset...]))
                offset += used
                switch event {
                case .end?: return
                case .error(let e)?: fatalError("parse error \(e)")
                case nil where offset == buf.count: fatalError("incomplete head")
                default: continue
                }
            }
        }
    }
}

// The chain cache on a hit: SHA-256 of the leaf and a lookup.
do {
    let cache = ChainCache(capacity: 1024)
    let l1 = link(alice, agentA, parent: nil), l2 = link(agentA, agentB, parent: l1), l3 = link(agentB, edAgent, parent: l2)
    let ancestry = Array((l1 + ", " + l2).utf8), leaf = Array(l3.utf8)
    let chain = VerifiedChain(principal: alice.did, agent: edAgent.did, dids: [alice.did, agentA.did, agentB.did, edAgent.did],
                              scopes: ["invoices:read"], proofKeyThumbprint: edAgent.thumbprint, notBefore: t0,
                              expiresAt: t0 + 3600, ancestry: ancestry)
    cache.store(ChainCache.Key(SHA256.hash(leaf)), chain, now: t0)
    absolute("chain-cache hit (3 links)", limitNs: nil, note: "SHA-256 of the leaf + lookup", count: n * 20) { _ in
        precondition(cache.lookup(ChainCache.Key(SHA256.hash(leaf)), ancestry: ancestry) != nil)
    }
}

// MARK: Output

func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s + " " : s + String(repeating: " ", count: w - s.count) }
func fixed(_ v: Double, _ digits: Int = 2) -> String {
    guard v.isFinite else { return "-" }
    let p = pow(10.0, Double(digits))
    let r = (v * p).rounded() / p
    var s = String(r)
    if let dot = s.firstIndex(of: ".") {
        let decimals = s.distance(from: dot, to: s.endIndex) - 1
        if decimals < digits { s += String(repeating: "0", count: digits - decimals) }
    }
    return s
}
print(pad("stage", 42) + pad("ns/op", 10) + pad("baseline", 10) + pad("ratio", 7) + pad("target", 32) + pad("met", 5) + "note")
for r in rows {
    let met = r.met.map { $0 ? "yes" : "NO" } ?? ""
    print(pad(r.name, 42) + pad(String(Int(r.nsPerOp.rounded())), 10) + pad(r.baselineNs.map { String(Int($0.rounded())) } ?? "", 10)
          + pad(r.ratio.map { fixed($0) } ?? "", 7) + pad(r.target, 32) + pad(met, 5) + r.note)
}
print("\(rounds) rounds × \(n) operations per stage; ratios are medians of per-round ratios")

if let jsonPath {
    var s = "{\"cores\":\(sysconf(Int32(_SC_NPROCESSORS_ONLN))),\"rounds\":\(rounds),\"operations_per_round\":\(n),\"results\":["
    for (i, r) in rows.enumerated() {
        if i > 0 { s += "," }
        s += "{\"name\":"
        JSONText.appendString(r.name, to: &s)
        s += ",\"ns_per_op\":\(r.nsPerOp.rounded())"
        if let b = r.baselineNs { s += ",\"baseline_ns\":\(b.rounded())" }
        if let x = r.ratio { s += ",\"ratio\":\(fixed(x, 3))" }
        if !r.target.isEmpty { s += ",\"target\":"; JSONText.appendString(r.target, to: &s) }
        if let m = r.met { s += ",\"met\":\(m)" }
        s += ",\"note\":"
        JSONText.appendString(r.note, to: &s)
        s += "}"
    }
    s += "]}\n"
    guard let f = fopen(jsonPath, "w") else { print("cannot write \(jsonPath)"); exit(1) }
    fputs(s, f)
    fclose(f)
}
