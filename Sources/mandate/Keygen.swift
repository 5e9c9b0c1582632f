import FoundationEssentials
import MandateCore
import MandateServer

enum Keygen {
    static func run(_ args: [String]) throws {
        let o = try Options(args, valued: ["--alg", "--out"], flags: ["--force"])
        guard let alg = JWSAlgorithm(rawValue: try o.required("--alg")), alg != .rs256 else {
            throw CLIError(message: "--alg is EdDSA or ES256", status: 2)
        }
        let out = try o.required("--out")
        if FileManager.default.fileExists(atPath: out) && !o.flags.contains("--force") {
            throw CLIError(message: "\(out) exists; not replacing a key without --force")
        }
        let key = SigningKey.generate(alg)
        try Files.writePrivate(out, key.privateJWK.serialized() + [0x0a])
        print("did: \(key.did)")
        print("jkt: \(key.thumbprint)")
    }
}

enum Delegate {
    static func run(_ args: [String]) throws {
        let o = try Options(args, valued: ["--key", "--to", "--to-jkt", "--scope", "--ttl", "--parent", "--aud",
                                           "--max-depth", "--bind-cert", "--issuer", "--kid", "--principal"])
        let key = try Files.loadKey(try o.required("--key"))
        let jkt: String, to: String
        var bound: String? = nil
        if let certPath = o.one("--bind-cert") {
            // RFC 8705: bound to the certificate; the delegate is whoever holds its key.
            let cert: (certificate: ClientCertificate, did: String?)
            do { cert = try CertificateFile.load(certPath) } catch { throw CLIError(message: "\(error)") }
            guard o.one("--to-jkt") == nil else { throw CLIError(message: "--bind-cert and --to-jkt exclude each other", status: 2) }
            guard let did = cert.did else {
                throw CLIError(message: "\(certPath): the certificate's key is not Ed25519 or P-256, so it cannot be an agent's key")
            }
            if let named = o.one("--to"), !sameDID(named, did) {
                throw CLIError(message: "\(certPath): the certificate's key is \(did), not --to \(named); the proxy would refuse it")
            }
            to = did
            jkt = ""
            var err = StandardError()
            print("mandate: the delegate is \(did), the key of \(certPath)", to: &err)
            bound = cert.certificate.thumbprint
        } else {
            to = try o.required("--to")
            guard DID.isWellFormed(to) else { throw CLIError(message: "--to must be a DID (did:key:… or did:jwk:…)", status: 2) }
            if let j = o.one("--to-jkt") {
                jkt = j
            } else {
                // A did:key delegate's own key is its proof key unless told otherwise.
                guard case .success(let r) = DID.resolve(to) else {
                    throw CLIError(message: "--to-jkt is required when --to is not a did:key or did:jwk", status: 2)
                }
                jkt = r.key.thumbprint
            }
        }
        var parent: String? = nil
        if let p = o.one("--parent") {
            parent = p.hasPrefix("@") ? try lastToken(Files.readText(String(p.dropFirst()))) : p
        }
        var depth: Int? = nil
        if let d = o.one("--max-depth") {
            guard let v = Int(d), v >= 0 else { throw CLIError(message: "--max-depth is a whole number", status: 2) }
            depth = v
        }
        let scope = try o.required("--scope")
        let ttl = try parseDuration(try o.required("--ttl"))
        var err = StandardError()
        if ttl > 24 * 3600 {
            print("mandate: warning: --ttl is over 24h; proxies refuse it unless max_delegation_lifetime allows it", to: &err)
        }
        if let parent, let p = try? DelegationToken.parse(Array(parent.utf8)[...], limits: .init()).get() {
            let wider = scope.split(separator: " ").map(String.init).filter { !p.scopes.contains($0) }
            if !wider.isEmpty {
                print("mandate: warning: scope \(wider.joined(separator: " ")) is not in the parent's; the chain will be refused",
                      to: &err)
            }
            if sameDID(p.subject, o.one("--issuer") ?? key.did) == false {
                print("mandate: warning: the parent delegates to \(p.subject), not to this key's DID", to: &err)
            }
        }
        // Signing as another DID (did:web, an organization): its verification method must hold this key.
        let issuer = o.one("--issuer")
        if let issuer, !DID.isWellFormed(issuer) { throw CLIError(message: "--issuer must be a DID", status: 2) }
        if issuer != nil && o.one("--kid") == nil && !(issuer.map { sameDID($0, key.did) } ?? true) {
            throw CLIError(message: "--issuer needs --kid: the id of the verification method that holds this key (DID#fragment)", status: 2)
        }
        if let p = o.one("--principal"), !PrincipalClaim.isIdentifier(p) {
            throw CLIError(message: "--principal is an identifier like alice@partner.example (not a DID)", status: 2)
        }
        if o.one("--principal") != nil && parent != nil {
            throw CLIError(message: "--principal is for an organization's root delegation, not below a parent", status: 2)
        }
        let jti = Mint.newID()
        let token = Mint.delegation(key: key, to: to, jkt: jkt, certificate: bound, scope: scope, issuedAt: unixNow(), ttl: ttl, parent: parent,
                                    audience: o.one("--aud"), maxDepth: depth, jti: jti, issuer: issuer,
                                    kid: o.one("--kid"), principal: o.one("--principal"))
        // The jti is what `mandate revoke delegation` takes.
        print("mandate: jti \(jti)", to: &err)
        print(token)
    }

    /// A chain file holds one token a line, root first; the parent of a new link is the last.
    static func lastToken(_ text: String) throws -> String {
        guard let last = chainLines(text).last else { throw CLIError(message: "parent file holds no token") }
        return last
    }
}

func chainLines(_ text: String) -> [String] {
    text.split(whereSeparator: \.isNewline).map { String($0).trimmingCharacters(in: " \t\r") }
        .filter { !$0.isEmpty && !$0.hasPrefix("#") }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        var s = self[...]
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}

func sameDID(_ a: String, _ b: String) -> Bool { a.utf8.elementsEqual(b.utf8) }
