import MandateHTTP

/// The header section the upstream receives: credentials and hop-by-hop fields removed,
/// client-supplied identity removed, and the proxy's own identity and forwarding headers set.
public struct UpstreamHeaders: Sendable {
    public let trustedProxies: TrustedProxies

    public init(trustedProxies: TrustedProxies) { self.trustedProxies = trustedProxies }

    /// What happens to a client field, by its canonical name.
    enum Kind: Equatable { case pass, drop, forwardedFor, forwardedProto, forwardedHost, forwarding }

    /// RFC 9110 §7.6.1 and RFC 9112 §9.6 / §7 (hop-by-hop); the agent's credentials and framing
    /// the server sets itself (never passed through); forwarding fields; and the `mandate-` prefix.
    static let table: [(String, Kind)] = [
        ("connection", .drop), ("keep-alive", .drop), ("proxy-connection", .drop), ("transfer-encoding", .drop),
        ("te", .drop), ("trailer", .drop), ("upgrade", .drop), ("proxy-authorization", .drop),
        ("proxy-authenticate", .drop),
        ("authorization", .drop), ("dpop", .drop), ("agent-delegation", .drop), ("signature", .drop),
        ("signature-input", .drop), ("txn-token", .drop), ("content-length", .drop), ("approval-id", .drop),
        ("x-forwarded-for", .forwardedFor), ("x-forwarded-proto", .forwardedProto),
        ("x-forwarded-host", .forwardedHost), ("forwarded", .forwarding), ("x-real-ip", .forwarding),
    ]

    /// Lowercased, with `_` read as `-`: many upstreams (CGI, WSGI) treat them alike.
    @inline(__always) static func canonical(_ c: UInt8) -> UInt8 {
        c == UInt8(ascii: "_") ? UInt8(ascii: "-") : (c >= 0x41 && c <= 0x5a ? c | 0x20 : c)
    }

    static func canonicalName(_ name: String) -> String {
        String(decoding: name.utf8.map(canonical), as: UTF8.self)
    }

    static func kind(_ name: String) -> Kind {
        let u = name.utf8
        if u.count >= 8 && zip(u, "mandate-".utf8).allSatisfy({ canonical($0) == $1 }) { return .drop }
        for (n, k) in table where n.utf8.count == u.count && u.elementsEqual(n.utf8, by: { canonical($0) == $1 }) {
            return k
        }
        return .pass
    }

    public func rewrite(_ head: HTTPRequestHead, chain: VerifiedChain, requestID: String, peer: String,
                        scheme: String = "http") -> [HTTPHeader] {
        var named: Set<String> = []
        for v in head.values("Connection") {
            for token in v.split(separator: ",") {
                let n = Self.canonicalName(token.trimmingASCIIWhitespace())
                if n != "host" { named.insert(n) }  // Host is end-to-end, whatever Connection says
            }
        }
        let trusted = trustedProxies.contains(peer)
        var out: [HTTPHeader] = []
        out.reserveCapacity(head.headers.count + 8)
        var clientXFF: [String] = []
        var clientProto: String?
        var clientHost: String?
        for h in head.headers {
            let k = Self.kind(h.name)
            if k == .drop || (!named.isEmpty && named.contains(Self.canonicalName(h.name))) { continue }
            if k != .pass {
                if trusted && h.name.utf8.allSatisfy({ $0 != UInt8(ascii: "_") }) {
                    switch k {
                    case .forwardedFor: clientXFF.append(h.value)
                    case .forwardedProto: clientProto = clientProto ?? h.value
                    case .forwardedHost: clientHost = clientHost ?? h.value
                    default: break
                    }
                }
                continue
            }
            out.append(h)
        }
        out.append(HTTPHeader("Mandate-Principal", chain.principal))
        if let org = chain.organization { out.append(HTTPHeader("Mandate-Organization", org)) }
        if let iss = chain.issuer { out.append(HTTPHeader("Mandate-Issuer", iss)) }
        out.append(HTTPHeader("Mandate-Agent", chain.agent))
        out.append(HTTPHeader("Mandate-Chain", chain.chainText))
        out.append(HTTPHeader("Mandate-Scope", chain.scopeText))
        out.append(HTTPHeader("Mandate-Request-Id", requestID))
        out.append(HTTPHeader("X-Forwarded-For", clientXFF.isEmpty ? peer : (clientXFF + [peer]).joined(separator: ", ")))
        out.append(HTTPHeader("X-Forwarded-Proto", clientProto ?? scheme))
        if let host = clientHost ?? head.value("Host") { out.append(HTTPHeader("X-Forwarded-Host", host)) }
        return out
    }
}

extension Substring {
    func trimmingASCIIWhitespace() -> String {
        var s = self[...]
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}

/// Peers whose X-Forwarded-* are believed: addresses and CIDR blocks, IPv4 and IPv6.
public struct TrustedProxies: Sendable {
    struct Block: Sendable { var address: [UInt8]; var prefix: Int }
    let blocks: [Block]

    public init(_ entries: [String]) throws(Reason) {
        blocks = try entries.map { (e: String) throws(Reason) -> Block in
            let parts = e.split(separator: "/", maxSplits: 1).map(String.init)
            guard let addr = Self.parse(parts[0]) else { throw Reason("'\(e)' is not an IP address or CIDR block") }
            var prefix = addr.count * 8
            if parts.count == 2 {
                guard let p = Int(parts[1]), p >= 0, p <= addr.count * 8 else { throw Reason("'\(e)' has a bad prefix length") }
                prefix = p
            }
            return Block(address: addr, prefix: prefix)
        }
    }

    public func contains(_ peer: String) -> Bool {
        guard !blocks.isEmpty, var a = Self.parse(peer) else { return false }
        // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d (RFC 4291 §2.5.5.2).
        if a.count == 16, a[..<10].allSatisfy({ $0 == 0 }), a[10] == 0xff, a[11] == 0xff { a = Array(a[12...]) }
        return blocks.contains { b in
            guard b.address.count == a.count else { return false }
            var bits = b.prefix, i = 0
            while bits >= 8 { if a[i] != b.address[i] { return false }; bits -= 8; i += 1 }
            if bits == 0 { return true }
            let mask = UInt8(0xff) << UInt8(8 - bits)
            return a[i] & mask == b.address[i] & mask
        }
    }

    /// IPv4 dotted quad (4 bytes) or IPv6 (16 bytes, `::` allowed, IPv4-mapped tail allowed).
    static func parse(_ s: String) -> [UInt8]? {
        if !s.contains(":") {
            let parts = s.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 4 else { return nil }
            var out: [UInt8] = []
            for p in parts {
                guard !p.isEmpty, p.count <= 3, p.allSatisfy(\.isASCII), let v = UInt8(p) else { return nil }
                out.append(v)
            }
            return out
        }
        var head: [UInt8] = [], tail: [UInt8] = []
        let halves = s.components(separatedByDoubleColon: ())
        guard halves.count <= 2 else { return nil }
        func groups(_ part: Substring, into out: inout [UInt8]) -> Bool {
            if part.isEmpty { return true }
            let gs = part.split(separator: ":", omittingEmptySubsequences: false)
            for (k, g) in gs.enumerated() {
                if k == gs.count - 1, g.contains("."), let v4 = parse(String(g)) { out += v4; continue }
                guard !g.isEmpty, g.count <= 4, let v = UInt16(g, radix: 16) else { return false }
                out += [UInt8(v >> 8), UInt8(v & 0xff)]
            }
            return true
        }
        guard groups(halves[0], into: &head) else { return nil }
        if halves.count == 2 {
            guard groups(halves[1], into: &tail), head.count + tail.count < 16 else { return nil }
            return head + [UInt8](repeating: 0, count: 16 - head.count - tail.count) + tail
        }
        return head.count == 16 ? head : nil
    }
}

extension String {
    /// Splits at the first `::`; three parts when there is a second one (invalid IPv6).
    func components(separatedByDoubleColon: ()) -> [Substring] {
        let u = Array(utf8)
        var i = 0
        while i + 1 < u.count, !(u[i] == 0x3a && u[i + 1] == 0x3a) { i += 1 }
        guard i + 1 < u.count else { return [self[...]] }
        let before = String(decoding: u[..<i], as: UTF8.self)[...]
        let rest = String(decoding: u[(i + 2)...], as: UTF8.self)
        if rest.components(separatedByDoubleColon: ()).count > 1 { return [before, "", ""] }
        return [before, rest[...]]
    }
}
