import Synchronization
import Testing
@testable import MandateCore
import MandateCrypto

/// did:web: the method's mapping (published vectors), the document rules, and the resolver's
/// cache as a state machine driven by a clock and a fetcher whose answers the test releases.
@Suite struct DIDWebTests {
    @Test func mapsTheSpecVectors() throws {
        let vectors = try Vectors.load("did").list("did_web_mappings")
        #expect(vectors.count == 3)
        for case let pair as [String] in vectors {
            #expect(try DIDWeb.url(for: pair[0]).get() == pair[1])
        }
    }

    @Test func refusesHostsThatAreNotDomainNames() throws {
        for did in ["did:web:127.0.0.1", "did:web:10.1.2.3%3A443", "did:web:[::1]", "did:web:example.com%3A0",
                    "did:web:example.com%3A99999", "did:web:exa%2Fmple.com", "did:web:example.com::x", "did:web:-bad.example",
                    "did:web:example.com%3A443%3A1"] {
            guard case .failure = DIDWeb.url(for: did) else { Issue.record("\(did) mapped"); continue }
        }
        #expect(try DIDWeb.url(for: "did:web:localhost%3A8443:a:b").get() == "https://localhost:8443/a/b/did.json")
    }

    let did = "did:web:example.com"
    let key = SigningKey.generate(.edDSA), other = SigningKey.generate(.es256)

    func doc(_ methods: String, auth: String = ##"["#k1"]"##, assertion: String = ##"["did:web:example.com#k1"]"##,
             id: String? = nil) -> [UInt8] {
        Array(##"{"id":"\##(id ?? did)","verificationMethod":[\##(methods)],"authentication":\##(auth),"assertionMethod":\##(assertion)}"##.utf8)
    }

    func jwkMethod(_ frag: String, _ k: SigningKey, controller: String? = nil) -> String {
        let jwk = String(decoding: k.publicJWK.serialized(), as: UTF8.self)
        return ##"{"id":"#\##(frag)","type":"JsonWebKey2020","controller":"\##(controller ?? did)","publicKeyJwk":\##(jwk)}"##
    }

    @Test func readsKeysAndTheirRelationships() throws {
        let mb = String(other.did.dropFirst(8))
        let d = try DIDWeb.document(doc(jwkMethod("k1", key) + ##",{"id":"did:web:example.com#k2","type":"Multikey","controller":"\##(did)","publicKeyMultibase":"\##(mb)"}"##,
                                        auth: ##"["#k1","#k2"]"##), did: did).get()
        #expect(d.methods.count == 2)
        #expect(d.assertionMethod(did + "#k1")?.thumbprint == key.thumbprint)
        #expect(d.assertionMethod(did + "#k2") == nil)  // authentication only
        #expect(d.authenticationThumbprints == [key.thumbprint, other.thumbprint])
        // An embedded method counts for its relationship only.
        let e = try DIDWeb.document(doc("", auth: "[]", assertion: "[" + jwkMethod("k3", other) + "]"), did: did).get()
        #expect(e.assertionMethod(did + "#k3")?.thumbprint == other.thumbprint && e.authenticationThumbprints.isEmpty)
    }

    @Test func refusesDocumentsThatBreakTheRules() {
        let cases: [([UInt8], String)] = [
            (doc(jwkMethod("k1", key), id: "did:web:evil.example"), "id is not the DID"),
            (doc(jwkMethod("k1", key, controller: "did:web:evil.example")), "is not controlled by the DID"),
            (doc(jwkMethod("k1", key) + "," + jwkMethod("k1", other)), "declared twice"),
            (doc(##"{"id":"did:web:other.example#k1","controller":"\##(did)","publicKeyJwk":{}}"##), "is not under the DID"),
            (doc(##"{"id":"#k1","controller":"\##(did)"}"##), "exactly one of publicKeyJwk and publicKeyMultibase"),
            (doc(##"{"id":"#k1","controller":"\##(did)","publicKeyJwk":{"kty":"OKP","crv":"Ed25519","x":"AAAA","d":"AAAA"}}"##), "private key members"),
            (doc(jwkMethod("k1", key), auth: ##""#k1""##), "authentication must be an array"),
            (Array(##"{"id":"\##(did)","id":"\##(did)"}"##.utf8), "repeats a member"),
            (doc(Array(repeating: jwkMethod("k1", key), count: 1).joined() + (2...33).map { "," + jwkMethod("k\($0)", key) }.joined()), "over 32 keys"),
        ]
        for (bytes, text) in cases {
            switch DIDWeb.document(bytes, did: did) {
            case .success: Issue.record("accepted: \(text)")
            case .failure(let e): #expect(e.description.contains(text), "\(e.description)")
            }
        }
    }

    // MARK: The resolver's cache

    /// Answers only when the test says so; counts fetches.
    final class HeldFetcher: DocumentFetcher {
        let pending = Mutex<[(String, @Sendable (Result<[UInt8], Reason>) -> Void)]>([])
        let count = Atomic<Int>(0)
        func fetch(_ url: String, done: @escaping @Sendable (Result<[UInt8], Reason>) -> Void) {
            count.add(1, ordering: .relaxed)
            pending.withLock { $0.append((url, done)) }
        }
        func answer(_ result: Result<[UInt8], Reason>) {
            for (_, done) in pending.withLock({ p in defer { p = [] }; return p }) { done(result) }
        }
        var fetches: Int { count.load(ordering: .relaxed) }
    }

    final class Clock: Sendable {
        let t = Mutex<Double>(1_000)
        func advance(_ s: Double) { t.withLock { $0 += s } }
        var now: Double { t.withLock { $0 } }
    }

    func resolver(_ f: HeldFetcher, _ c: Clock, _ edit: (inout DIDWebResolver.Settings) -> Void = { _ in }) -> DIDWebResolver {
        var s = DIDWebResolver.Settings()
        s.ttl = 60; s.maxStale = 300; s.negativeTTL = 10; s.kidCooldown = 5
        edit(&s)
        return DIDWebResolver(fetcher: f, settings: s, clock: { c.now })
    }

    func isPending(_ l: DIDWebResolver.Lookup) -> Bool { if case .pending = l { true } else { false } }
    func document(_ l: DIDWebResolver.Lookup) -> DIDDocument? { if case .document(let d, _) = l { d } else { nil } }
    func failure(_ l: DIDWebResolver.Lookup) -> (String, Bool)? { if case .failed(let w, let t) = l { (w, t) } else { nil } }

    @Test func oneFetchForManyAndReadinessFires() {
        let f = HeldFetcher(), c = Clock(), r = resolver(f, c)
        let fired = Atomic<Int>(0)
        for _ in 0 ..< 5 {
            guard case .pending(let ready) = r.lookup(did) else { Issue.record("not pending"); return }
            ready.whenReady { fired.add(1, ordering: .relaxed) }
        }
        #expect(f.fetches == 1)
        f.answer(.success(doc(jwkMethod("k1", key))))
        #expect(fired.load(ordering: .relaxed) == 5)
        #expect(document(r.lookup(did))?.methods.count == 1)
        #expect(f.fetches == 1)
    }

    /// /metrics: documents served from the cache, and fetches started.
    @Test func countsCacheHitsAndFetches() {
        let f = HeldFetcher(), c = Clock(), r = resolver(f, c)
        _ = r.lookup(did)
        f.answer(.success(doc(jwkMethod("k1", key))))
        for _ in 0 ..< 3 { _ = r.lookup(did) }
        let (hits, fetches) = (r.hits.load(ordering: .relaxed), r.fetches.load(ordering: .relaxed))
        #expect(hits == 3 && fetches == 1)
    }

    @Test func expiresThenServesStaleWhileTheServerFails() {
        let f = HeldFetcher(), c = Clock(), r = resolver(f, c)
        _ = r.lookup(did); f.answer(.success(doc(jwkMethod("k1", key))))
        c.advance(61)  // past the ttl: fetched again, and the request waits for it
        #expect(isPending(r.lookup(did)))
        f.answer(.failure(Reason("HTTP 500")))
        #expect(document(r.lookup(did)) != nil)  // stale, during negative_ttl
        #expect(f.fetches == 2)
        c.advance(11)
        #expect(isPending(r.lookup(did)))  // negative_ttl over: tried again
        f.answer(.failure(Reason("HTTP 500")))
        c.advance(300)  // past max_stale: the next failure leaves nothing to serve
        #expect(isPending(r.lookup(did)))
        f.answer(.failure(Reason("HTTP 500")))
        #expect(failure(r.lookup(did))?.0.contains("HTTP 500") == true)
    }

    @Test func remembersFailuresWithNothingToServe() {
        let f = HeldFetcher(), c = Clock(), r = resolver(f, c)
        _ = r.lookup(did); f.answer(.failure(Reason("HTTP 404")))
        for _ in 0 ..< 10 { #expect(failure(r.lookup(did)) ?? ("", true) == ("did:web HTTP 404", false)) }
        #expect(f.fetches == 1)
        c.advance(10)
        #expect(isPending(r.lookup(did)))
    }

    @Test func missingKidRefetchesAtMostOncePerCooldown() {
        let f = HeldFetcher(), c = Clock(), r = resolver(f, c)
        _ = r.lookup(did); f.answer(.success(doc(jwkMethod("k1", key))))
        #expect(document(r.lookup(did, missingKid: true)) != nil)  // fetched just now: no refetch
        c.advance(5)
        #expect(isPending(r.lookup(did, missingKid: true)))
        f.answer(.success(doc(jwkMethod("k1", key))))
        for _ in 0 ..< 10 { #expect(document(r.lookup(did, missingKid: true)) != nil) }
        #expect(f.fetches == 2)
    }

    @Test func rateLimitRefusesBeyondTheBudget() {
        let f = HeldFetcher(), c = Clock(), r = resolver(f, c) { $0.fetchesPerSecond = 1; $0.burst = 2; $0.maxInFlight = 100 }
        #expect(isPending(r.lookup("did:web:a.example")))
        #expect(isPending(r.lookup("did:web:b.example")))
        #expect(failure(r.lookup("did:web:c.example"))?.1 == true)  // temporary: 503
        c.advance(1)
        #expect(isPending(r.lookup("did:web:c.example")))
        #expect(f.fetches == 3)
    }

    @Test func aClockStepBackDoesNotDrainTheBudget() {
        let f = HeldFetcher(), c = Clock(), r = resolver(f, c) { $0.fetchesPerSecond = 1; $0.burst = 2; $0.maxInFlight = 100 }
        #expect(isPending(r.lookup("did:web:a.example")))
        c.advance(-600)  // NTP steps the wall clock back ten minutes
        #expect(isPending(r.lookup("did:web:b.example")))  // what was left of the burst
        #expect(failure(r.lookup("did:web:c.example"))?.1 == true)
        c.advance(1)
        #expect(isPending(r.lookup("did:web:c.example")))  // refilled a second later, not ten minutes
        #expect(f.fetches == 3)
    }

    @Test func inFlightCapRefusesToo() {
        let f = HeldFetcher(), c = Clock(), r = resolver(f, c) { $0.maxInFlight = 1 }
        #expect(isPending(r.lookup("did:web:a.example")))
        #expect(failure(r.lookup("did:web:b.example"))?.1 == true)
        f.answer(.failure(Reason("x")))
        #expect(isPending(r.lookup("did:web:b.example")))
    }

    @Test func aFloodOfFailingDIDsDoesNotEvictDocuments() {
        let f = HeldFetcher(), c = Clock(), r = resolver(f, c) { $0.maxEntries = 8; $0.burst = 1_000; $0.maxInFlight = 1_000 }
        _ = r.lookup(did); f.answer(.success(doc(jwkMethod("k1", key))))
        for i in 0 ..< 50 {
            _ = r.lookup("did:web:flood\(i).example")
            f.answer(.failure(Reason("HTTP 404")))
        }
        #expect(document(r.lookup(did)) != nil)  // still cached: no fetch, no 503 while the flood lasts
        #expect(f.fetches == 51)
    }

    // MARK: Through the pipeline

    @Test func forgedLinkNeverCausesAFetch() throws {
        let f = HeldFetcher(), c = Clock()
        let principal = SigningKey.generate(.edDSA)
        let v = try Verifier(config: config(principals: [principal]), resolvers: .init(didWeb: resolver(f, c)))
        var l = Link(principal, to: key)
        l.sub = did
        l.signer = SigningKey.generate(.edDSA)  // not the principal's key
        let leaf = l.token
        let r = v.verify(head(leaf: leaf, proof: proof(key, for: leaf)), now: now)
        #expect(r.denial?.description.contains("signature") == true, "\(r.denial?.description ?? "admitted")")
        #expect(f.fetches == 0)
    }

    @Test func waitsForTheDocumentThenAdmits() throws {
        let f = HeldFetcher(), c = Clock()
        let principal = SigningKey.generate(.edDSA)
        let v = try Verifier(config: config(principals: [principal]), resolvers: .init(didWeb: resolver(f, c)))
        var l = Link(principal, to: key)
        l.sub = did
        let leaf = l.token
        let h = head(leaf: leaf, proof: proof(key, for: leaf))
        guard case .wait(let ready) = v.admit(h, peer: Peer(address: "127.0.0.1"), requestID: "r", now: now) else {
            Issue.record("not waiting"); return
        }
        let fired = Atomic<Bool>(false)
        ready.whenReady { fired.store(true, ordering: .relaxed) }
        f.answer(.success(doc(jwkMethod("k1", key))))
        let didFire = fired.load(ordering: .relaxed)
        #expect(didFire)
        // Nothing was spent while waiting: the same proof is admitted now, once.
        guard case .forward(let plan) = v.admit(h, peer: Peer(address: "127.0.0.1"), requestID: "r", now: now) else {
            Issue.record("not forwarded"); return
        }
        #expect(plan.facts.agent == did)
        guard case .refuse(let d, _) = v.admit(h, peer: Peer(address: "127.0.0.1"), requestID: "r", now: now) else {
            Issue.record("replay admitted"); return
        }
        #expect(d.description.contains("already been used"))
    }
}
