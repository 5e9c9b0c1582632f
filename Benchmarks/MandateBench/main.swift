// The hot-path instrument: nanoseconds per operation for each verification stage, beside the bare
// signature verifications measured in the same run. Prints a table, and JSON with --json FILE.
//   swift run -c release mandate-bench [--quick] [--json FILE]
import MandateCore
import MandateCrypto
import MandateHTTP
#if canImport(Glibc)
import Glibc
#endif

func nowNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

struct Result { var name: String; var nsPerOp: Double; var iterations: Int; var note: String }

/// Median of `rounds` rounds of `n` calls each.
func measure(_ name: String, n: Int, rounds: Int = 5, note: String = "", _ body: (Int) -> Void) -> Result {
    if let only, !name.contains(only) { return Result(name: name, nsPerOp: .nan, iterations: 0, note: "skipped") }
    var samples: [Double] = []
    body(0)  // warm-up
    var i = 1
    for _ in 0..<rounds {
        let t0 = nowNanos()
        for _ in 0..<n { body(i); i += 1 }
        samples.append(Double(nowNanos() - t0) / Double(n))
    }
    samples.sort()
    return Result(name: name, nsPerOp: samples[samples.count / 2], iterations: n * rounds, note: note)
}

var quick = false
var jsonPath: String? = nil
nonisolated(unsafe) var only: String? = nil  // --only SUBSTRING: run one stage (for profilers)
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
let n = iterationsOverride ?? (quick ? 50 : 2000)
let rounds = quick ? 1 : 5

// Identities: Alice (Ed25519 principal) → A (ES256) → B (Ed25519), and single-link agents.
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

func link(_ from: SigningKey, _ to: SigningKey, parent: String?) -> String {
    Mint.delegation(key: from, to: to.did, jkt: to.thumbprint, scope: "invoices:read", issuedAt: t0, ttl: 3600,
                    parent: parent, audience: nil, maxDepth: nil, jti: Mint.newID())
}

func head(leaf: String, ancestors: [String], proof: String) -> HTTPRequestHead {
    var h = [HTTPHeader("Host", "api.example.com"), HTTPHeader("User-Agent", "mandate-bench"),
             HTTPHeader("Accept", "application/json"), HTTPHeader("Authorization", "DPoP " + leaf), HTTPHeader("DPoP", proof)]
    if !ancestors.isEmpty { h.append(HTTPHeader("Agent-Delegation", ancestors.joined(separator: ", "))) }
    return HTTPRequestHead(method: "GET", target: "/invoices/42?expand=lines", headers: h)
}

func proofs(_ key: SigningKey, leaf: String, count: Int) -> [String] {
    (0..<count).map { _ in
        Mint.proof(key: key, method: "GET", htu: origin + "/invoices/42", accessToken: leaf, issuedAt: t0, jti: Mint.newID())
    }
}

func expectForward(_ h: HTTPRequestHead) {
    if case .failure(let r) = verifier.verify(h, now: t0) { fatalError("benchmark request refused: \(r.denial.description)") }
}

var results: [Result] = []

// Bare signature verifications: the physical limit.
let msg = Array(repeating: UInt8(ascii: "a"), count: 300)
let edSig = edAgent.sign(msg)
guard case .ed25519(_, let edPub) = edAgent else { fatalError() }
results.append(measure("bare libsodium crypto_sign_verify_detached", n: n, rounds: rounds) { _ in
    precondition(Ed25519.verify(signature: edSig, message: msg, publicKey: edPub))
})
let ecSig = ecAgent.sign(msg)
guard case .p256(_, let ecPub) = ecAgent else { fatalError() }
results.append(measure("bare OpenSSL P-256 ECDSA verify", n: n, rounds: rounds) { _ in
    precondition(ecPub.verify(signature: ecSig, message: msg))
})
let bareEd = results[0].nsPerOp, bareEC = results[1].nsPerOp

// (a)/(b) chain seen before + a fresh proof each time.
for (name, agent) in [("DPoP verify, cached chain, Ed25519 proof", edAgent), ("DPoP verify, cached chain, ES256 proof", ecAgent)] {
    let leaf = link(alice, agent, parent: nil)
    let ps = proofs(agent, leaf: leaf, count: n * rounds + 1)
    let heads = ps.map { head(leaf: leaf, ancestors: [], proof: $0) }
    expectForward(head(leaf: leaf, ancestors: [], proof: proofs(agent, leaf: leaf, count: 1)[0]))  // seed the chain cache
    results.append(measure(name, n: n, rounds: rounds, note: "full pipeline, 1 signature") { i in expectForward(heads[i]) })
}

// (c) cold 3-link chain (Ed25519, ES256, Ed25519) with its ES256... proof by B (Ed25519): 4 signatures.
do {
    let count = n * rounds + 1
    var heads: [HTTPRequestHead] = []
    heads.reserveCapacity(count)
    for _ in 0..<count {
        let l1 = link(alice, agentA, parent: nil)
        let l2 = link(agentA, agentB, parent: l1)
        let l3 = link(agentB, edAgent, parent: l2)
        heads.append(head(leaf: l3, ancestors: [l1, l2], proof: proofs(edAgent, leaf: l3, count: 1)[0]))
    }
    results.append(measure("cold 3-link chain + proof", n: n, rounds: rounds,
                           note: "4 signatures: Ed25519, ES256, Ed25519 links, Ed25519 proof") { i in expectForward(heads[i]) })
}

// Chain-cache hit: hash the leaf and look up the chain.
do {
    let cache = ChainCache(capacity: 1024)
    let l1 = link(alice, agentA, parent: nil), l2 = link(agentA, agentB, parent: l1), l3 = link(agentB, edAgent, parent: l2)
    let ancestry = Array((l1 + ", " + l2).utf8), leaf = Array(l3.utf8)
    let chain = VerifiedChain(principal: alice.did, agent: edAgent.did, dids: [alice.did, agentA.did, agentB.did, edAgent.did],
                              scopes: ["invoices:read"], proofKeyThumbprint: edAgent.thumbprint, notBefore: t0,
                              expiresAt: t0 + 3600, ancestry: ancestry)
    cache.store(ChainCache.Key(SHA256.hash(leaf)), chain, now: t0)
    results.append(measure("chain-cache hit (3 links)", n: n * 10, rounds: rounds, note: "SHA-256 of the leaf + lookup") { _ in
        precondition(cache.lookup(ChainCache.Key(SHA256.hash(leaf)), ancestry: ancestry) != nil)
    })
}

// Policy against 100 routes.
do {
    let policy = RoutePolicy(routes: config.routes)
    let chain = VerifiedChain(principal: alice.did, agent: edAgent.did, dids: [alice.did, edAgent.did], scopes: ["invoices:read"],
                              proofKeyThumbprint: "", notBefore: t0, expiresAt: t0 + 3600, ancestry: [])
    results.append(measure("policy, 100 routes", n: n * 10, rounds: rounds) { _ in
        precondition(policy.decide(method: "GET", path: "/invoices/42", chain: chain).1 == nil)
    })
}

// (e) Parsing a typical agent request head (about 2.5 KB with a 3-link chain), with a reused parser.
do {
    let l1 = link(alice, agentA, parent: nil), l2 = link(agentA, agentB, parent: l1), l3 = link(agentB, edAgent, parent: l2)
    let proof = proofs(edAgent, leaf: l3, count: 1)[0]
    var text = "GET /invoices/42?expand=lines HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: agent-sdk/1.4\r\n"
    text += "Accept: application/json\r\nAccept-Encoding: gzip\r\nTraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
    text += "Authorization: DPoP \(l3)\r\nDPoP: \(proof)\r\nAgent-Delegation: \(l1), \(l2)\r\n\r\n"
    let bytes = Array(text.utf8)
    var parser = HTTPRequestParser()
    results.append(measure("parse request head (\(bytes.count) bytes)", n: n * 10, rounds: rounds,
                           note: "RFC 9112 parser, reused") { _ in
        bytes.withUnsafeBytes { buf in
            var offset = 0
            var sawHead = false
            while true {
                let (event, used) = parser.parse(UnsafeRawBufferPointer(rebasing: buf[offset...]))
                offset += used
                switch event {
                case .head?: sawHead = true
                case .end?: precondition(sawHead); return
                case .error(let e)?: fatalError("parse error \(e)")
                default: if event == nil && offset == buf.count { fatalError("incomplete") }
                }
            }
        }
    })
}

func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s : s + String(repeating: " ", count: w - s.count) }
func fmt(_ v: Double) -> String {
    let r = (v * 100).rounded() / 100
    return String(r)
}
print(pad("stage", 46) + pad("ns/op", 12) + pad("× Ed25519", 11) + pad("× P-256", 9) + "note")
for r in results where !r.nsPerOp.isNaN {  // --only skips the other stages
    print(pad(r.name, 46) + pad(String(Int(r.nsPerOp.rounded())), 12) + pad(fmt(r.nsPerOp / bareEd), 11)
          + pad(fmt(r.nsPerOp / bareEC), 9) + r.note)
}
if let jsonPath {
    var s = "{\"machine_cores\":\(sysconf(Int32(_SC_NPROCESSORS_ONLN))),\"quick\":\(quick),\"results\":["
    for (i, r) in results.enumerated() {
        if i > 0 { s += "," }
        s += "{\"name\":"
        JSONText.appendString(r.name, to: &s)
        s += ",\"ns_per_op\":\(r.nsPerOp.rounded()),\"iterations\":\(r.iterations),"
        s += "\"ratio_to_ed25519\":\(fmt(r.nsPerOp / bareEd)),\"ratio_to_p256\":\(fmt(r.nsPerOp / bareEC)),\"note\":"
        JSONText.appendString(r.note, to: &s)
        s += "}"
    }
    s += "]}\n"
    guard let f = fopen(jsonPath, "w") else { print("cannot write \(jsonPath)"); exit(1) }
    fputs(s, f)
    fclose(f)
}
