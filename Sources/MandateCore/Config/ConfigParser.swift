/// `file:line: message`, as nginx reports configuration errors.
public struct ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var message: String
    public var description: String { "\(file):\(line): \(message)" }
}

/// nginx-style syntax: `directive args…;`, `directive args… { … }`, `#` comments, "quoted" strings.
public struct ConfigParser {
    struct Token { var text: String; var line: Int; var quoted: Bool }
    struct Directive { var name: String; var args: [Token]; var block: [Directive]?; var line: Int }

    let file: String
    var lastLine = 1

    public static func parse(_ text: String, file: String) throws(ConfigError) -> ProxyConfig {
        var p = ConfigParser(file: file)
        // The file's last line (a final newline ends it, it does not start another).
        p.lastLine = max(1, text.split(separator: "\n", omittingEmptySubsequences: false).count - (text.hasSuffix("\n") ? 1 : 0))
        var tokens = try p.tokenize(text)[...]
        let directives = try p.directives(&tokens, depth: 0, openedAt: nil)
        return try p.build(directives)
    }

    func error(_ line: Int, _ message: String) -> ConfigError { ConfigError(file: file, line: line, message: message) }

    func tokenize(_ text: String) throws(ConfigError) -> [Token] {
        var tokens: [Token] = []
        var line = 1
        let u = Array(text.utf8)
        var i = 0
        func isSpecial(_ c: UInt8) -> Bool { c == UInt8(ascii: ";") || c == UInt8(ascii: "{") || c == UInt8(ascii: "}") }
        while i < u.count {
            let c = u[i]
            if c == 0x0a { line += 1; i += 1; continue }
            if c == 0x20 || c == 0x09 || c == 0x0d { i += 1; continue }
            if c == UInt8(ascii: "#") {
                while i < u.count, u[i] != 0x0a { i += 1 }
                continue
            }
            if isSpecial(c) {
                tokens.append(Token(text: String(UnicodeScalar(c)), line: line, quoted: false))
                i += 1
                continue
            }
            if c == UInt8(ascii: "\"") || c == UInt8(ascii: "'") {
                let quote = c, start = line
                var value: [UInt8] = []
                i += 1
                while true {
                    guard i < u.count else { throw error(start, "unterminated string") }
                    let d = u[i]
                    if d == quote { i += 1; break }
                    if d == UInt8(ascii: "\\"), i + 1 < u.count { value.append(u[i + 1]); i += 2; continue }
                    if d == 0x0a { line += 1 }
                    value.append(d)
                    i += 1
                }
                guard let s = String(validating: value, as: UTF8.self) else { throw error(start, "string is not UTF-8") }
                tokens.append(Token(text: s, line: start, quoted: true))
                continue
            }
            let start = i
            while i < u.count, !isSpecial(u[i]), u[i] > 0x20, u[i] != UInt8(ascii: "#") { i += 1 }
            guard let s = String(validating: u[start..<i], as: UTF8.self) else { throw error(line, "not UTF-8") }
            tokens.append(Token(text: s, line: line, quoted: false))
        }
        return tokens
    }

    func directives(_ t: inout ArraySlice<Token>, depth: Int, openedAt: Int?) throws(ConfigError) -> [Directive] {
        var out: [Directive] = []
        while let first = t.popFirst() {
            if !first.quoted && first.text == "}" {
                guard openedAt != nil else { throw error(first.line, "unexpected '}'") }
                return out
            }
            guard !first.quoted, first.text != ";", first.text != "{" else {
                throw error(first.line, "expected a directive name, found '\(first.text)'")
            }
            var args: [Token] = []
            while true {
                guard let next = t.popFirst() else { throw error(first.line, "directive '\(first.text)' is not terminated by ';'") }
                if !next.quoted && next.text == ";" {
                    out.append(Directive(name: first.text, args: args, block: nil, line: first.line))
                    break
                }
                if !next.quoted && next.text == "{" {
                    guard depth == 0 else { throw error(next.line, "blocks do not nest here") }
                    let block = try directives(&t, depth: depth + 1, openedAt: next.line)
                    out.append(Directive(name: first.text, args: args, block: block, line: first.line))
                    break
                }
                if !next.quoted && next.text == "}" { throw error(next.line, "unexpected '}' (missing ';'?)") }
                args.append(next)
            }
        }
        if let o = openedAt { throw error(o, "block is not closed with '}'") }
        return out
    }

    func build(_ directives: [Directive]) throws(ConfigError) -> ProxyConfig {
        var c = ProxyConfig()
        var seen: [String: Int] = [:]
        var listens: [ProxyConfig.Listen] = []
        for d in directives {
            let repeatable = ["listen", "principal", "organization", "oauth_issuer", "route", "trusted_proxies", "ciba_client"]
            if !repeatable.contains(d.name) {
                if let first = seen[d.name] { throw error(d.line, "'\(d.name)' is duplicate (first at line \(first))") }
                seen[d.name] = d.line
            }
            if d.block != nil && !["principal", "organization", "oauth_issuer", "route", "listen", "did_web", "txn_token", "audit", "approval", "ciba_client", "ciba_provider"].contains(d.name) {
                throw error(d.line, "'\(d.name)' does not take a block")
            }
            switch d.name {
            case "listen": listens.append(try listen(d))
            case "workers":
                let v = try one(d)
                c.workers = v.text == "auto" ? 0 : try int(v, 1...256)
            case "public_origin":
                let v = try one(d)
                guard HTU.normalizeOrigin(v.text) != nil else {
                    throw error(v.line, "public_origin must be http(s)://host[:port] without a path")
                }
                c.publicOrigin = v.text
            case "audience": c.audience = try one(d).text
            case "upstream":
                let v = try one(d)
                guard v.text.hasPrefix("http://") || v.text.hasPrefix("https://") else {
                    throw error(v.line, "upstream must be an http:// or https:// URL")
                }
                c.upstream = v.text
            case "max_chain_length": c.maxChainLength = try int(one(d), 1...16)
            case "clock_skew": c.clockSkew = Int64(try duration(one(d), max: 3600))
            case "max_delegation_lifetime": c.maxDelegationLifetime = Int64(try duration(one(d), max: 366 * 86400))
            case "dpop_max_age": c.dpopMaxAge = Int64(try duration(one(d), max: 3600))
            case "dpop_future_skew": c.dpopFutureSkew = Int64(try duration(one(d), max: 600))
            case "replay_cache_size": c.replayCacheSize = try int(one(d), 1...(1 << 26))
            case "chain_cache_size": c.chainCacheSize = try int(one(d), 1...(1 << 22))
            case "client_max_body_size": c.clientMaxBodySize = try size(one(d))
            case "max_header_size": c.maxHeaderBytes = try size(one(d))
            case "max_headers": c.maxHeaderCount = try int(one(d), 1...10_000)
            case "max_uri_length": c.maxURILength = try size(one(d))
            case "header_timeout": c.headerTimeout = try duration(one(d), max: 3600)
            case "idle_timeout": c.idleTimeout = try duration(one(d), max: 86400)
            case "upstream_connect_timeout": c.upstreamConnectTimeout = try duration(one(d), max: 3600)
            case "upstream_timeout": c.upstreamTimeout = try duration(one(d), max: 86400)
            case "trusted_proxies":
                guard !d.args.isEmpty else { throw error(d.line, "trusted_proxies needs at least one address") }
                for a in d.args {
                    do { _ = try TrustedProxies([a.text]) } catch { throw self.error(a.line, error.text) }
                    c.trustedProxies.append(a.text)
                }
            case "access_log": c.accessLog = try one(d).text
            case "principal": c.principals.append(try principal(d))
            case "did_web": c.didWeb = try didWeb(d)
            case "txn_token": c.txnToken = try txnToken(d)
            case "audit": c.audit = try audit(d)
            case "admin_listen": c.adminListen = try address(one(d))
            case "admin_token_file": c.adminTokenFile = resolvePath(try one(d).text)
            case "organization": c.organizations.append(try organization(d))
            case "oauth_issuer":
                let i = try oauthIssuer(d)
                if c.oauthIssuers.contains(where: { $0.issuer == i.issuer }) { throw error(d.line, "oauth_issuer \(i.issuer) is duplicate") }
                // An opaque token names no issuer: one endpoint, or which would it go to?
                if i.introspection != nil && c.oauthIssuers.contains(where: { $0.introspection != nil }) {
                    throw error(d.line, "only one oauth_issuer may introspect opaque tokens")
                }
                c.oauthIssuers.append(i)
            case "route": c.routes.append(try route(d))
            case "state_dir": c.stateDir = resolvePath(try one(d).text)
            case "approval_wait": c.approvalWait = try duration(one(d), max: 600)
            case "approval": c.approval = try approval(d)
            case "ciba_client":
                let client = try cibaClient(d)
                if c.cibaClients.contains(where: { $0.id == client.id }) { throw error(d.line, "ciba_client \(client.id) is duplicate") }
                c.cibaClients.append(client)
            case "ciba_provider": c.cibaProvider = try cibaProvider(d)
            default:
                throw error(d.line, "unknown directive '\(d.name)'")
            }
        }
        if !listens.isEmpty { c.listen = listens }
        // Two listeners on one address would fail at bind; say so here, with the line.
        let listenLines = directives.filter { $0.name == "listen" }.map(\.line)
        for (i, l) in listens.enumerated() where l.port != 0 {
            if let j = listens[..<i].firstIndex(where: { $0.host == l.host && $0.port == l.port }) {
                throw error(listenLines[i], "listen \(l.host):\(l.port) is duplicate (first at line \(listenLines[j]))")
            }
        }
        if let a = c.adminListen, a.port != 0, c.listen.contains(where: { $0.host == a.host && $0.port == a.port }),
           let d = directives.first(where: { $0.name == "admin_listen" }) {
            throw error(d.line, "admin_listen \(a.host):\(a.port) is also a listen address; the admin listener needs its own")
        }
        // RFC 9449 §4.3: agents sign htu with the scheme they used; a TLS listener behind an
        // http:// public origin would refuse every proof signed for https.
        if let tls = c.listen.first(where: { $0.tls != nil }), !c.publicOrigin.lowercased().hasPrefix("https://"),
           let d = directives.first(where: { $0.name == "listen" && $0.args.count == 2 }) {
            throw error(d.line, "listen \(tls.host):\(tls.port) terminates TLS but public_origin is \(c.publicOrigin); use https://")
        }
        let dids = c.principals.map(\.did)
        if let dup = dids.first(where: { d in dids.filter { $0 == d }.count > 1 }) {
            throw error(directives.first { $0.name == "principal" && $0.args.first?.text == dup }!.line,
                        "principal \(dup) is enrolled twice")
        }
        let anchors = c.principals.map(\.did) + c.organizations.map(\.did)
        if let dup = anchors.first(where: { d in anchors.filter { $0 == d }.count > 1 }),
           let d = directives.last(where: { ($0.name == "principal" || $0.name == "organization") && $0.args.first?.text == dup }) {
            throw error(d.line, "\(dup) is both a principal and an organization, or an organization twice")
        }
        if c.didWeb == nil, let web = directives.first(where: { ($0.name == "principal" || $0.name == "organization")
                                                               && $0.args.first?.text.hasPrefix("did:web:") == true }) {
            throw error(web.line, "\(web.name) \(web.args[0].text) is a did:web: enable fetching it with did_web { … }")
        }
        let enrolled = Set(dids)
        let partners = Set(c.organizations.map(\.did))
        for (r, d) in zip(c.routes, directives.filter { $0.name == "route" }) {
            // An enrolled principal's DID, or a person a declared organization may speak for.
            if let stranger = r.principals.first(where: { p in !enrolled.contains(p) && !c.organizations.contains { $0.admits(principal: p) } }) {
                throw error(d.line, "route admits principal \(stranger), which is not enrolled nor spoken for by an organization")
            }
            if let stranger = r.organizations.first(where: { !partners.contains($0) }) {
                throw error(d.line, "route admits organization \(stranger), which is not declared")
            }
        }
        if c.approval != nil && c.approval?.listen == nil && c.cibaProvider == nil,
           let d = directives.first(where: { $0.name == "approval" }) {
            throw error(d.line, "approval needs listen (the built-in service) unless a ciba_provider asks instead")
        }
        if let a = c.approval?.listen, c.listen.contains(where: { $0.host == a.host && $0.port == a.port && a.port != 0 })
            || (c.adminListen.map { $0.host == a.host && $0.port == a.port && a.port != 0 } ?? false),
           let d = directives.first(where: { $0.name == "approval" }) {
            throw error(d.line, "approval listen \(a.host):\(a.port) is already in use by listen or admin_listen")
        }
        // No silent defaults for where traffic goes and what agents sign.
        for required in ["upstream", "public_origin"] where seen[required] == nil {
            throw error(lastLine, "missing required directive '\(required)'")
        }
        return c
    }

    func one(_ d: Directive) throws(ConfigError) -> Token {
        guard d.args.count == 1 else {
            throw error(d.line, "'\(d.name)' takes exactly one value" + (d.args.count > 1 ? " (missing ';'?)" : ""))
        }
        return d.args[0]
    }

    func int(_ t: Token, _ range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard let v = Int(t.text), range.contains(v) else {
            throw error(t.line, "'\(t.text)' is not a whole number in \(range.lowerBound)...\(range.upperBound)")
        }
        return v
    }

    /// `500ms`, `30s`, `5m`, `24h`, `7d`; a bare number is seconds.
    func duration(_ t: Token, max: Double) throws(ConfigError) -> Double {
        let s = t.text
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        var number = Substring(s), factor = 1.0
        for (u, f) in units where s.hasSuffix(u) {
            number = s.dropLast(u.count)
            factor = f
            break
        }
        guard let v = Int(number), v >= 0, Double(v) * factor <= max else {
            throw error(t.line, "'\(s)' is not a duration (like 500ms, 30s, 5m, 24h) up to \(Int(max))s")
        }
        return Double(v) * factor
    }

    /// `512`, `16k`, `10m`, `1g`.
    func size(_ t: Token) throws(ConfigError) -> Int {
        let s = t.text.lowercased()
        var number = Substring(s), factor = 1
        if let last = s.last, let f = ["k": 1 << 10, "m": 1 << 20, "g": 1 << 30][String(last)] {
            number = s.dropLast()
            factor = f
        }
        guard let v = Int(number), v > 0, v <= (1 << 40) / factor else { throw error(t.line, "'\(t.text)' is not a size (like 16k, 10m)") }
        return v * factor
    }

    /// `listen ADDR;` or `listen ADDR tls { certificate F; key F; [client_ca F;] [verify_client …;] }`.
    func listen(_ d: Directive) throws(ConfigError) -> ProxyConfig.Listen {
        guard let first = d.args.first, d.args.count <= 2 else {
            throw error(d.line, "listen takes an address, then optionally tls and a block")
        }
        var l = try address(first)
        guard d.args.count == 2 else {
            if d.block != nil { throw error(d.line, "a listen block is for TLS: listen \(first.text) tls { … }") }
            return l
        }
        guard d.args[1].text == "tls" else { throw error(d.args[1].line, "unknown listen parameter '\(d.args[1].text)' (tls?)") }
        guard let block = d.block else {
            throw error(d.line, "listen … tls needs a block: tls { certificate FILE; key FILE; }")
        }
        var cert: String?, key: String?, ca: String?, verify: ProxyConfig.TLS.ClientVerification?
        var seen: Set<String> = []
        for b in block {
            guard seen.insert(b.name).inserted else { throw error(b.line, "'\(b.name)' is duplicate in this tls block") }
            switch b.name {
            case "certificate": cert = resolvePath(try one(b).text)
            case "key": key = resolvePath(try one(b).text)
            case "client_ca": ca = resolvePath(try one(b).text)
            case "verify_client":
                let v = try one(b)
                guard let m = ProxyConfig.TLS.ClientVerification(rawValue: v.text) else {
                    throw error(v.line, "verify_client is off, optional or required")
                }
                verify = m
            default: throw error(b.line, "unknown directive '\(b.name)' in tls (certificate, key, client_ca, verify_client)")
            }
        }
        guard let cert, let key else { throw error(d.line, "tls needs both certificate and key") }
        if let v = verify, v != .off, ca == nil { throw error(d.line, "verify_client \(v.rawValue) needs client_ca") }
        // A CA bundle means client certificates are wanted; whether they are required is explicit.
        let mode = verify ?? (ca == nil ? .off : .optional)
        l.tls = ProxyConfig.TLS(certificate: cert, key: key, clientCA: mode == .off ? nil : ca, verifyClient: mode,
                                origin: "\(file):\(d.line)")
        return l
    }

    /// Relative to the config file's folder, as a reader of the file would take it.
    func resolvePath(_ path: String) -> String {
        guard !path.hasPrefix("/"), let slash = file.lastIndex(of: "/") else { return path }
        return String(file[...slash]) + path
    }

    func address(_ t: Token) throws(ConfigError) -> ProxyConfig.Listen {
        var host = "0.0.0.0", portText = t.text
        if t.text.hasPrefix("[") {
            guard let close = t.text.firstIndex(of: "]"), t.text[t.text.index(after: close)...].hasPrefix(":") else {
                throw error(t.line, "listen takes host:port, [v6]:port or port")
            }
            host = String(t.text[t.text.index(after: t.text.startIndex)..<close])
            portText = String(t.text[t.text.index(close, offsetBy: 2)...])
        } else if let colon = t.text.lastIndex(of: ":") {
            host = String(t.text[..<colon])
            portText = String(t.text[t.text.index(after: colon)...])
        }
        guard let port = Int(portText), (0...65535).contains(port), TrustedProxies.parse(host) != nil else {
            throw error(t.line, "listen takes an IP address and port, like 127.0.0.1:8080")
        }
        return ProxyConfig.Listen(host: host, port: port)
    }

    func principal(_ d: Directive) throws(ConfigError) -> ProxyConfig.Principal {
        guard d.args.count == 1, let block = d.block else { throw error(d.line, "principal takes a DID and a block: principal did:key:… { name \"…\"; }") }
        let did = d.args[0]
        if did.text.hasPrefix("did:web:") {
            if case .failure(let e) = DIDWeb.url(for: did.text) { throw error(did.line, "principal '\(did.text)' is not a usable DID (\(e.description))") }
        } else if case .failure(let e) = DID.resolve(did.text) {
            throw error(did.line, "principal '\(did.text)' is not a usable DID (\(e.description))")
        }
        var name = ""
        var webhook: String?
        for b in block {
            switch b.name {
            case "name": name = try one(b).text
            case "webhook":
                let t = try one(b)
                webhook = try url(t)
                // The fragment names an ntfy topic (docs/approvals.md, "Webhook").
                if let hash = t.text.firstIndex(of: "#"), !ApprovalWebhook.isTopic(t.text[t.text.index(after: hash)...]) {
                    throw error(t.line, "webhook '\(t.text)': the part after # is an ntfy topic: 1 to 64 of A-Z a-z 0-9 - _")
                }
            default: throw error(b.line, "unknown directive '\(b.name)' in principal (name, webhook)")
            }
        }
        guard !name.isEmpty else { throw error(d.line, "principal needs a name") }
        return ProxyConfig.Principal(did: did.text, name: name, webhook: webhook)
    }

    func txnToken(_ d: Directive) throws(ConfigError) -> ProxyConfig.TxnToken {
        guard d.args.isEmpty, let block = d.block else { throw error(d.line, "txn_token takes a block: txn_token { keys FILE…; trust_domain D; }") }
        var keys: [String]?, domain: String?, workload: String?, ttl: Double?
        var seen: Set<String> = []
        for b in block {
            guard seen.insert(b.name).inserted else { throw error(b.line, "'\(b.name)' is duplicate in txn_token") }
            switch b.name {
            case "keys":
                guard !b.args.isEmpty else { throw error(b.line, "keys needs at least one key file") }
                keys = b.args.map { resolvePath($0.text) }
                if let dup = keys!.first(where: { k in keys!.filter { $0 == k }.count > 1 }) {
                    throw error(b.line, "key file \(dup) is listed twice")
                }
            case "trust_domain": domain = try one(b).text
            case "workload": workload = try one(b).text
            case "ttl":
                let v = try one(b)
                ttl = try duration(v, max: 3600)
                if ttl == 0 { throw error(v.line, "ttl must be above 0") }
            default: throw error(b.line, "unknown directive '\(b.name)' in txn_token (keys, trust_domain, workload, ttl)")
            }
        }
        guard let keys, let domain else { throw error(d.line, "txn_token needs keys and trust_domain") }
        var t = ProxyConfig.TxnToken(keyFiles: keys, trustDomain: domain)
        if let workload { t.workload = workload }
        if let ttl { t.ttl = ttl }
        return t
    }

    func audit(_ d: Directive) throws(ConfigError) -> ProxyConfig.Audit {
        guard d.args.isEmpty, let block = d.block else { throw error(d.line, "audit takes a block: audit { file FILE; key FILE; }") }
        var file: String?, key: String?, every: Int?, size: Int?
        var seen: Set<String> = []
        for b in block {
            guard seen.insert(b.name).inserted else { throw error(b.line, "'\(b.name)' is duplicate in audit") }
            switch b.name {
            case "file": file = resolvePath(try one(b).text)
            case "key": key = resolvePath(try one(b).text)
            case "checkpoint_every": every = try int(one(b), 1...1_000_000)
            case "max_size": size = try self.size(one(b))
            default: throw error(b.line, "unknown directive '\(b.name)' in audit (file, key, checkpoint_every, max_size)")
            }
        }
        guard let file, let key else { throw error(d.line, "audit needs file and key") }
        var a = ProxyConfig.Audit(file: file, key: key)
        if let every { a.checkpointEvery = every }
        if let size { a.maxSize = size }
        return a
    }

    func onOff(_ t: Token) throws(ConfigError) -> Bool {
        guard t.text == "on" || t.text == "off" else { throw error(t.line, "'\(t.text)' is not on or off") }
        return t.text == "on"
    }

    /// `oauth_issuer https://as.example { audience A; jwks_uri U; ca F; allow_private_addresses on;
    /// timeout 5s; refresh 5m; kid_cooldown 30s; max_act_depth 4; }`, every directive optional.
    func oauthIssuer(_ d: Directive) throws(ConfigError) -> ProxyConfig.OAuthIssuer {
        guard d.args.count == 1 else { throw error(d.line, "oauth_issuer takes the issuer URL, then optionally a block") }
        let url = d.args[0]
        // RFC 8414 §2: https, no query or fragment.
        guard url.text.hasPrefix("https://"), url.text.count > 8, !url.text.contains("?"), !url.text.contains("#") else {
            throw error(url.line, "oauth_issuer must be an https URL without query or fragment")
        }
        var i = ProxyConfig.OAuthIssuer(issuer: url.text)
        var seen: Set<String> = []
        var endpoint: String?, clientID: String?, secret: String?, cache: Double?
        for b in d.block ?? [] {
            guard seen.insert(b.name).inserted else { throw error(b.line, "'\(b.name)' is duplicate in oauth_issuer") }
            switch b.name {
            case "audience": i.audience = try one(b).text
            case "jwks_uri":
                let v = try one(b)
                guard v.text.hasPrefix("https://") else { throw error(v.line, "jwks_uri must be an https URL") }
                i.jwksURI = v.text
            case "ca": i.fetch.caFile = resolvePath(try one(b).text)
            case "allow_private_addresses": i.fetch.allowPrivateAddresses = try onOff(one(b))
            case "timeout": i.fetch.timeout = max(0.001, try duration(one(b), max: 60))
            case "refresh": i.keys.refresh = try duration(one(b), max: 86400)
            case "kid_cooldown": i.keys.kidCooldown = try duration(one(b), max: 3600)
            case "max_act_depth": i.maxActDepth = try int(one(b), 0...16)
            case "introspection_endpoint":
                let v = try one(b)
                guard v.text.hasPrefix("https://") else { throw error(v.line, "introspection_endpoint must be an https URL") }
                endpoint = v.text
            case "client_id": clientID = try one(b).text
            case "client_secret": secret = try one(b).text
            case "introspection_cache": cache = try duration(one(b), max: 3600)
            default:
                throw error(b.line, "unknown directive '\(b.name)' in oauth_issuer (audience, jwks_uri, ca, allow_private_addresses, timeout, refresh, kid_cooldown, max_act_depth, introspection_endpoint, client_id, client_secret, introspection_cache)")
            }
        }
        if endpoint != nil || clientID != nil || secret != nil || cache != nil {
            guard let endpoint, let clientID, let secret else {
                throw error(d.line, "introspection needs introspection_endpoint, client_id and client_secret together")
            }
            i.introspection = ProxyConfig.Introspection(endpoint: endpoint, clientID: clientID, clientSecret: secret)
            if let cache { i.introspection!.cache = cache }
        }
        return i
    }

    func organization(_ d: Directive) throws(ConfigError) -> ProxyConfig.Organization {
        guard d.args.count == 1, let block = d.block else {
            throw error(d.line, "organization takes a DID and a block: organization did:web:… { name …; principals …; max_scope …; }")
        }
        let did = d.args[0]
        let usable: Bool
        if did.text.hasPrefix("did:web:") {
            if case .success = DIDWeb.url(for: did.text) { usable = true } else { usable = false }
        } else if case .success = DID.resolve(did.text) { usable = true } else { usable = false }
        guard usable else { throw error(did.line, "organization '\(did.text)' is not a usable DID") }
        var name = "", patterns: [String]?, scopes: [String]?
        var seen: Set<String> = []
        for b in block {
            guard seen.insert(b.name).inserted else { throw error(b.line, "'\(b.name)' is duplicate in this organization") }
            switch b.name {
            case "name": name = try one(b).text
            case "principals":
                guard !b.args.isEmpty else { throw error(b.line, "principals needs at least one identifier or pattern") }
                for a in b.args where a.text != "*" && !PrincipalClaim.isIdentifier(a.text.hasPrefix("*@") ? "x" + a.text.dropFirst() : a.text) {
                    throw error(a.line, "'\(a.text)' is not a principal identifier or pattern (alice@partner.example, *@partner.example, *)")
                }
                patterns = b.args.map(\.text)
            case "max_scope":
                guard !b.args.isEmpty else { throw error(b.line, "max_scope needs at least one scope") }
                for a in b.args where !ScopeToken.isToken(a.text) {
                    throw error(a.line, "'\(a.text)' is not an RFC 6749 scope token")
                }
                scopes = b.args.map(\.text)
            default: throw error(b.line, "unknown directive '\(b.name)' in organization (name, principals, max_scope)")
            }
        }
        guard !name.isEmpty else { throw error(d.line, "organization needs a name") }
        guard let patterns else { throw error(d.line, "organization needs principals: who it may speak for") }
        guard let scopes else { throw error(d.line, "organization needs max_scope: the most it may grant") }
        return ProxyConfig.Organization(did: did.text, name: name, principals: patterns, maxScope: scopes)
    }

    /// `did_web { ca F; allow_private_addresses on; timeout 5s; max_size 64k; ttl 5m; max_stale 1h;
    /// negative_ttl 30s; kid_cooldown 30s; fetch_rate 10; }`, every directive optional.
    func didWeb(_ d: Directive) throws(ConfigError) -> ProxyConfig.DIDWebSettings {
        guard d.args.isEmpty, let block = d.block else { throw error(d.line, "did_web takes a block: did_web { … }") }
        var w = ProxyConfig.DIDWebSettings()
        var seen: Set<String> = []
        for b in block {
            guard seen.insert(b.name).inserted else { throw error(b.line, "'\(b.name)' is duplicate in did_web") }
            switch b.name {
            case "ca": w.caFile = resolvePath(try one(b).text)
            case "allow_private_addresses": w.allowPrivateAddresses = try onOff(one(b))
            case "timeout": w.timeout = try duration(one(b), max: 60)
            case "max_size": w.maxSize = try size(one(b))
            case "ttl": w.cache.ttl = try duration(one(b), max: 7 * 86400)
            case "max_stale": w.cache.maxStale = try duration(one(b), max: 7 * 86400)
            case "negative_ttl": w.cache.negativeTTL = try duration(one(b), max: 86400)
            case "kid_cooldown": w.cache.kidCooldown = try duration(one(b), max: 86400)
            case "fetch_rate": w.cache.fetchesPerSecond = Double(try int(one(b), 1...10_000))
            default:
                throw error(b.line, "unknown directive '\(b.name)' in did_web (ca, allow_private_addresses, timeout, max_size, ttl, max_stale, negative_ttl, kid_cooldown, fetch_rate)")
            }
        }
        if w.timeout == 0 { throw error(d.line, "did_web timeout must be above 0") }
        w.cache.burst = max(1, w.cache.fetchesPerSecond * 2)
        return w
    }

    func route(_ d: Directive) throws(ConfigError) -> ProxyConfig.Route {
        guard d.args.count == 1, let block = d.block else { throw error(d.line, "route takes a path prefix and a block") }
        let prefix = d.args[0]
        guard case .success(let normal) = PathNormalizer.normalize(prefix.text.utf8, .policy),
              normal == prefix.text else {
            throw error(prefix.line, "route prefix '\(prefix.text)' must be a normalised absolute path")
        }
        var r = ProxyConfig.Route(prefix: prefix.text, effect: .deny, origin: "\(file):\(d.line)")
        var effect: ProxyConfig.Effect?
        var seen: Set<String> = []
        for b in block {
            guard seen.insert(b.name).inserted else { throw error(b.line, "'\(b.name)' is duplicate in this route") }
            switch b.name {
            case "methods":
                guard !b.args.isEmpty else { throw error(b.line, "methods needs at least one method") }
                for m in b.args {
                    guard !m.text.isEmpty, m.text.utf8.allSatisfy({ $0 >= 0x41 && $0 <= 0x5a }) else {
                        throw error(m.line, "'\(m.text)' is not an upper-case method name")
                    }
                }
                r.methods = b.args.map(\.text)
            case "scope": r.scopes = b.args.map(\.text)
            case "effect":
                let v = try one(b)
                guard let e = ProxyConfig.Effect(rawValue: v.text) else { throw error(v.line, "effect is allow, deny or approve") }
                effect = e
            case "principals": r.principals = b.args.map(\.text)
            case "agents": r.agents = b.args.map(\.text)
            case "organizations": r.organizations = b.args.map(\.text)
            case "allow_bearer": r.allowBearer = try onOff(one(b))
            case "approval_wait": r.approvalWait = try duration(one(b), max: 600)
            default: throw error(b.line, "unknown directive '\(b.name)' in route")
            }
        }
        guard let effect else { throw error(d.line, "route needs an effect (allow, deny or approve)") }
        r.effect = effect
        return r
    }

    /// An http(s) URL (webhooks, endpoints).
    func url(_ t: Token) throws(ConfigError) -> String {
        let lower = t.text.lowercased()
        guard lower.hasPrefix("http://") || lower.hasPrefix("https://"), t.text.utf8.count > 8,
              !t.text.utf8.contains(where: { $0 <= 0x20 || $0 >= 0x7f }) else {
            throw error(t.line, "'\(t.text)' is not an http:// or https:// URL")
        }
        return t.text
    }

    func approval(_ d: Directive) throws(ConfigError) -> ProxyConfig.Approval {
        guard d.args.isEmpty, let block = d.block else {
            throw error(d.line, "approval takes a block: approval { listen ADDR; public_url URL; key FILE; }")
        }
        var a = ProxyConfig.Approval(listen: nil, publicURL: "", key: nil)
        var seen: Set<String> = []
        for b in block {
            guard seen.insert(b.name).inserted else { throw error(b.line, "'\(b.name)' is duplicate in approval") }
            switch b.name {
            case "listen": a.listen = try address(one(b))
            case "public_url":
                a.publicURL = try url(one(b))
                while a.publicURL.hasSuffix("/") { a.publicURL.removeLast() }  // links are made as public_url + "/…"
            case "key": a.key = resolvePath(try one(b).text)
            case "expires_in": a.expiresIn = try duration(one(b), max: 86400)
            case "interval": a.interval = max(1, try duration(one(b), max: 600))
            default: throw error(b.line, "unknown directive '\(b.name)' in approval (listen, public_url, key, expires_in, interval)")
            }
        }
        if a.listen != nil {
            guard a.key != nil else { throw error(d.line, "approval needs key: it signs receipts for decisions made on its page") }
            if a.publicURL.isEmpty, let l = a.listen { a.publicURL = "http://\(l.host.contains(":") ? "[\(l.host)]" : l.host):\(l.port)" }
        }
        return a
    }

    func cibaClient(_ d: Directive) throws(ConfigError) -> ProxyConfig.CIBAClient {
        guard d.args.count == 1, let block = d.block else {
            throw error(d.line, "ciba_client takes an id and a block: ciba_client ID { secret_file FILE; }")
        }
        var secret: String?, delivery = ProxyConfig.CIBAClient.Delivery.poll, endpoint: String?
        var seen: Set<String> = []
        for b in block {
            guard seen.insert(b.name).inserted else { throw error(b.line, "'\(b.name)' is duplicate in ciba_client") }
            switch b.name {
            case "secret_file": secret = resolvePath(try one(b).text)
            case "delivery":
                let v = try one(b)
                guard let m = ProxyConfig.CIBAClient.Delivery(rawValue: v.text) else { throw error(v.line, "delivery is poll or ping") }
                delivery = m
            case "notification_endpoint": endpoint = try url(one(b))
            default: throw error(b.line, "unknown directive '\(b.name)' in ciba_client (secret_file, delivery, notification_endpoint)")
            }
        }
        guard let secret else { throw error(d.line, "ciba_client needs secret_file") }
        if delivery == .ping && endpoint == nil { throw error(d.line, "delivery ping needs notification_endpoint (CIBA §4)") }
        var c = ProxyConfig.CIBAClient(id: d.args[0].text, secretFile: secret)
        c.delivery = delivery
        c.notificationEndpoint = endpoint
        return c
    }

    func cibaProvider(_ d: Directive) throws(ConfigError) -> ProxyConfig.CIBAProvider {
        guard d.args.count == 1, let block = d.block else { throw error(d.line, "ciba_provider takes an issuer URL and a block") }
        let issuer = try url(d.args[0])
        var bc: String?, token: String?, id: String?, secret: String?
        var fetch = ProxyConfig.FetchSettings()
        var seen: Set<String> = []
        for b in block {
            guard seen.insert(b.name).inserted else { throw error(b.line, "'\(b.name)' is duplicate in ciba_provider") }
            switch b.name {
            case "backchannel_endpoint": bc = try url(one(b))
            case "token_endpoint": token = try url(one(b))
            case "client_id": id = try one(b).text
            case "client_secret_file": secret = resolvePath(try one(b).text)
            case "ca": fetch.caFile = resolvePath(try one(b).text)
            case "allow_private_addresses": fetch.allowPrivateAddresses = try onOff(one(b))
            case "timeout": fetch.timeout = max(0.001, try duration(one(b), max: 60))
            default: throw error(b.line, "unknown directive '\(b.name)' in ciba_provider (backchannel_endpoint, token_endpoint, client_id, client_secret_file, ca, allow_private_addresses, timeout)")
            }
        }
        guard let bc, let token, let id, let secret else {
            throw error(d.line, "ciba_provider needs backchannel_endpoint, token_endpoint, client_id and client_secret_file")
        }
        var p = ProxyConfig.CIBAProvider(issuer: issuer, backchannelEndpoint: bc, tokenEndpoint: token, clientID: id, clientSecretFile: secret)
        p.fetch = fetch
        return p
    }
}
