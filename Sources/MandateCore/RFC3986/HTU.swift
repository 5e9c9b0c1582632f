/// The `htu` comparison of RFC 9449 §4.3: scheme, authority and path, without query and fragment,
/// after RFC 3986 §6.2.2 and §6.2.3 normalisation.
public enum HTU {
    /// Normalises an absolute http(s) URI to `scheme://host[:port]/path`, or nil when it is not one.
    public static func normalize(_ uri: String) -> String? {
        var u = Array(uri.utf8)[...]
        if let q = u.firstIndex(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) { u = u[..<q] }
        guard let colon = u.firstIndex(of: UInt8(ascii: ":")) else { return nil }
        let scheme = String(decoding: u[..<colon], as: UTF8.self).lowercased()
        guard scheme == "http" || scheme == "https" else { return nil }
        let rest = u[(colon + 1)...]
        guard rest.starts(with: "//".utf8) else { return nil }
        let afterSlashes = rest.dropFirst(2)
        let pathStart = afterSlashes.firstIndex(of: UInt8(ascii: "/")) ?? afterSlashes.endIndex
        let authority = afterSlashes[..<pathStart]
        guard !authority.isEmpty, !authority.contains(UInt8(ascii: "@")) else { return nil }
        guard let origin = normalizeAuthority(authority, scheme: scheme) else { return nil }
        guard case .success(let path) = PathNormalizer.normalize(afterSlashes[pathStart...], .rfc3986) else { return nil }
        return scheme + "://" + origin + path
    }

    /// The request path as §6.2.2 normalises it (no policy refusals), for the htu comparison.
    public static func normalizePath(_ path: Substring) -> String? {
        if case .success(let p) = PathNormalizer.normalize(path.utf8, .rfc3986) { return p }
        return nil
    }

    /// `scheme://host[:port]` from a configured origin (no path), normalised.
    public static func normalizeOrigin(_ origin: String) -> String? {
        guard let n = normalize(origin), n.hasSuffix("/") else { return nil }
        let o = n.dropLast()
        // A path ("https://h/v1/") would otherwise be glued in front of every request path.
        guard let sep = o.firstRange(of: "://"), !o[sep.upperBound...].contains("/") else { return nil }
        return String(o)
    }

    static func normalizeAuthority(_ a: ArraySlice<UInt8>, scheme: String) -> String? {
        var host = a, port: ArraySlice<UInt8> = []
        if a.first == UInt8(ascii: "[") {
            guard let close = a.firstIndex(of: UInt8(ascii: "]")) else { return nil }
            host = a[a.startIndex...close]
            let after = a[(close + 1)...]
            if !after.isEmpty {
                guard after.first == UInt8(ascii: ":") else { return nil }
                port = after.dropFirst()
            }
        } else if let c = a.lastIndex(of: UInt8(ascii: ":")) {
            host = a[..<c]
            port = a[(c + 1)...]
        }
        guard !host.isEmpty, port.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), port.count <= 5 else { return nil }
        for c in host where c <= 0x20 || c == 0x7f || c == UInt8(ascii: "%") { return nil }
        var out = String(decoding: host, as: UTF8.self).lowercased()
        if !port.isEmpty {
            guard let p = Int(String(decoding: port, as: UTF8.self)), p <= 65535 else { return nil }
            let defaultPort = scheme == "https" ? 443 : 80
            if p != defaultPort { out += ":" + String(p) }
        }
        return out
    }
}
