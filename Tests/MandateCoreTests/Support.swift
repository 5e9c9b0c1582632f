import Foundation
import MandateCore
import MandateCrypto
import MandateHTTP

/// The published vectors: `../shared/vectors/` beside the package root, else `$MANDATE_VECTORS`,
/// else the copy in `Tests/vectors/`.
enum Vectors {
    struct Missing: Error, CustomStringConvertible {
        var description: String
    }

    /// Tests/MandateCoreTests/X.swift → the package root.
    static func root(filePath: String = #filePath) -> URL {
        URL(fileURLWithPath: filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    static var shared: URL { root().deletingLastPathComponent().appendingPathComponent("shared/vectors") }
    static var copy: URL { root().appendingPathComponent("Tests/vectors") }

    static func directory() -> URL {
        if FileManager.default.fileExists(atPath: shared.path) { return shared }
        if let env = ProcessInfo.processInfo.environment["MANDATE_VECTORS"] { return URL(fileURLWithPath: env) }
        return copy
    }

    static func load(_ name: String) throws -> [String: Any] {
        let url = directory().appendingPathComponent(name + ".json")
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw Missing(description: "vector file \(url.path) not found; set MANDATE_VECTORS")
        }
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw Missing(description: "\(url.path) is not a JSON object")
        }
        return object
    }
}

extension Dictionary where Key == String, Value == Any {
    func object(_ key: String) throws -> [String: Any] {
        guard let v = self[key] as? [String: Any] else { throw Vectors.Missing(description: "no object '\(key)'") }
        return v
    }

    func text(_ key: String) throws -> String {
        guard let v = self[key] as? String else { throw Vectors.Missing(description: "no string '\(key)'") }
        return v
    }

    func list(_ key: String) throws -> [Any] {
        guard let v = self[key] as? [Any] else { throw Vectors.Missing(description: "no array '\(key)'") }
        return v
    }

    /// The same object as our strict parser reads it.
    func jsonObject(removing names: Set<String> = []) throws -> JSONObject {
        let kept = filter { !names.contains($0.key) }
        let data = try JSONSerialization.data(withJSONObject: kept, options: [.sortedKeys])
        return try StrictJSON.parseObject(Array(data)).get()
    }
}

func bytes(_ s: String) -> ArraySlice<UInt8> { Array(s.utf8)[...] }

func hex(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var it = s.utf8.makeIterator()
    while let a = it.next(), let b = it.next() {
        out.append(UInt8(String(decoding: [a, b], as: UTF8.self), radix: 16)!)
    }
    return out
}

func b64(_ s: String) -> String { Base64URL.encode(Array(s.utf8)) }

/// A compact JWS from raw header and payload text, with the given signature bytes.
func rawJWS(_ header: String, _ payload: String, signature: [UInt8] = [UInt8](repeating: 1, count: 64)) -> String {
    b64(header) + "." + b64(payload) + "." + Base64URL.encode(signature)
}

func parse(_ token: String) -> Result<CompactJWS, JOSERefusal> { CompactJWS.parse(bytes(token)) }

func refusal(_ r: Result<CompactJWS, JOSERefusal>) -> JOSERefusal? {
    if case .failure(let e) = r { return e }
    return nil
}

/// A fixed clock for everything that mints: the pipeline never reads the wall clock.
let now: Int64 = 1_750_000_000

/// One link of a delegation chain, built claim by claim so that a test can break exactly one rule.
struct Link {
    var signer: SigningKey
    var typ: JSONValue? = .string(DelegationToken.mediaType)
    var kid: String
    var extraHeader: [(String, JSONValue)] = []
    var iss: String
    var sub: String
    var jkt: String
    /// When set, cnf holds x5t#S256 (RFC 8705) instead of jkt; `cnf` replaces both.
    var x5t: String? = nil
    var cnf: JSONObject? = nil
    var scope: String = "read write"
    var iat: JSONValue = .integer(now - 10)
    var exp: JSONValue = .integer(now + 3600)
    var nbf: JSONValue? = nil
    var jti: String = Mint.newID()
    var aud: JSONValue? = nil
    var prf: String? = nil
    var maxDepth: Int? = nil
    var extraClaims: [(String, JSONValue)] = []

    /// `signer` delegates to `delegate`; `parent` is the parent token (nil for the root).
    init(_ signer: SigningKey, to delegate: SigningKey, parent: String? = nil) {
        self.signer = signer
        kid = signer.keyID
        iss = signer.did
        sub = delegate.did
        jkt = delegate.thumbprint
        prf = parent.map(prfOf)
    }

    var token: String {
        var header: [(String, JSONValue)] = []
        if let typ { header.append(("typ", typ)) }
        header.append(("kid", .string(kid)))
        header += extraHeader
        var claims: [(String, JSONValue)] = [
            ("iss", .string(iss)), ("sub", .string(sub)),
            ("cnf", .object(cnf ?? JSONObject(members: [x5t.map { ("x5t#S256", .string($0)) } ?? ("jkt", .string(jkt))]))),
            ("scope", .string(scope)), ("iat", iat), ("exp", exp), ("jti", .string(jti)),
        ]
        if let nbf { claims.append(("nbf", nbf)) }
        if let aud { claims.append(("aud", aud)) }
        if let prf { claims.append(("prf", .string(prf))) }
        if let maxDepth { claims.append(("max_depth", .integer(Int64(maxDepth)))) }
        claims += extraClaims
        return signer.compactJWS(header: header, claims: JSONObject(members: claims))
    }
}

func prfOf(_ token: String) -> String { Base64URL.encode(SHA256.hash(Array(token.utf8))) }

/// A chain minted with `Mint.delegation`: `issuers[0]` is the principal; each link delegates to the
/// next key, and the last link delegates to `proofKey`.
struct Chain {
    var keys: [SigningKey]
    var tokens: [String]
    var principal: SigningKey { keys[0] }
    var proofKey: SigningKey { keys[keys.count - 1] }
    var leaf: String { tokens[tokens.count - 1] }
    var ancestors: [String] { Array(tokens.dropLast()) }

    init(_ issuers: [JWSAlgorithm], proof: JWSAlgorithm = .edDSA, scopes: [String]? = nil, ttl: Int64 = 3600,
         audience: String? = nil) {
        keys = issuers.map(SigningKey.generate) + [SigningKey.generate(proof)]
        tokens = []
        for i in issuers.indices {
            let scope = scopes?[i] ?? "read write"
            tokens.append(Mint.delegation(key: keys[i], to: keys[i + 1].did, jkt: keys[i + 1].thumbprint, scope: scope,
                                          issuedAt: now - 10, ttl: ttl, parent: tokens.last, audience: audience,
                                          maxDepth: nil, jti: Mint.newID()))
        }
    }
}

let publicOrigin = "https://proxy.example"
let upstreamOrigin = "http://127.0.0.1:9000"

func config(principals: [SigningKey], routes: [ProxyConfig.Route] = [ProxyConfig.Route(prefix: "/", effect: .allow)])
    -> ProxyConfig {
    var c = ProxyConfig()
    c.publicOrigin = publicOrigin
    c.upstream = upstreamOrigin
    c.principals = principals.enumerated().map { ProxyConfig.Principal(did: $0.element.did, name: "principal \($0.offset)") }
    c.routes = routes
    return c
}

/// A request head carrying `Authorization: DPoP <leaf>`, `DPoP: <proof>` and, when there are
/// ancestors, `Agent-Delegation: <root>, …`.
func head(_ method: String = "GET", _ target: String = "/orders", leaf: String, ancestors: [String] = [],
          proof: String?, scheme: String = "DPoP", extra: [HTTPHeader] = []) -> HTTPRequestHead {
    var h = [HTTPHeader("Host", "proxy.example"), HTTPHeader("Authorization", scheme + " " + leaf)]
    if let proof { h.append(HTTPHeader("DPoP", proof)) }
    if !ancestors.isEmpty { h.append(HTTPHeader("Agent-Delegation", ancestors.joined(separator: ", "))) }
    return HTTPRequestHead(method: method, target: target, headers: h + extra)
}

func proof(_ key: SigningKey, _ method: String = "GET", _ path: String = "/orders", for token: String,
           iat: Int64 = now, jti: String = Mint.newID(), origin: String = publicOrigin) -> String {
    Mint.proof(key: key, method: method, htu: origin + path, accessToken: token, issuedAt: iat, jti: jti)
}

/// A request for `chain` with a fresh proof.
func request(_ chain: Chain, _ method: String = "GET", _ target: String = "/orders", iat: Int64 = now) -> HTTPRequestHead {
    let path = String(target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0])
    return head(method, target, leaf: chain.leaf, ancestors: chain.ancestors,
                proof: proof(chain.proofKey, method, path, for: chain.leaf, iat: iat))
}

extension Result where Success == Verifier.Verified, Failure == Verifier.Refusal {
    var denial: Denial? {
        if case .failure(let r) = self { return r.denial }
        return nil
    }
    var accepted: Bool {
        if case .success = self { return true }
        return false
    }
}

extension Result {
    var succeeded: Bool {
        if case .success = self { return true }
        return false
    }
    var refused: Failure? {
        if case .failure(let e) = self { return e }
        return nil
    }
}

extension ChainWalker.Outcome {
    /// Local DIDs never wait: a pending walk is a test failure here.
    var result: Result<VerifiedChain, Denial> {
        switch self {
        case .verified(let c): .success(c)
        case .refused(let d): .failure(d)
        case .pending: .failure(Denial(.temporarilyUnavailable, "pending"))
        }
    }
}
