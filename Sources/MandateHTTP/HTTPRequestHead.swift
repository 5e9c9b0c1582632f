/// A header field as received (name case preserved; compare case-insensitively).
public struct HTTPHeader: Sendable, Equatable {
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) { self.name = name; self.value = value }
}

/// The parsed request line and header section (RFC 9112 §3, §5).
public struct HTTPRequestHead: Sendable, Equatable {
    public enum Framing: Sendable, Equatable { case none, length(Int), chunked }

    public var method: String
    /// The request-target exactly as sent (origin-form: path and optional query).
    public var target: String
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    public var minorVersion: Int
    public var headers: [HTTPHeader]
    public var framing: Framing
    public var keepAlive: Bool

    public init(method: String, target: String, minorVersion: Int = 1, headers: [HTTPHeader],
                framing: Framing = .none, keepAlive: Bool = true) {
        self.method = method; self.target = target; self.minorVersion = minorVersion
        self.headers = headers; self.framing = framing; self.keepAlive = keepAlive
    }

    /// Every value of a field, in order (field names are case-insensitive, RFC 9110 §5.1).
    public func values(_ name: String) -> [String] {
        headers.filter { fieldNameIs($0.name, name) }.map(\.value)
    }

    public func value(_ name: String) -> String? {
        headers.first { fieldNameIs($0.name, name) }?.value
    }

    /// Path without the query.
    public var path: Substring {
        guard let q = target.utf8.firstIndex(of: UInt8(ascii: "?")) else { return target[...] }
        return target[..<q]
    }
    /// Query without the `?`, nil when absent.
    public var query: Substring? {
        guard let i = target.utf8.firstIndex(of: UInt8(ascii: "?")) else { return nil }
        return target[target.utf8.index(after: i)...]
    }
}

@inlinable
public func asciiCaseInsensitiveEqual(_ a: UInt8, _ b: UInt8) -> Bool {
    a == b || (a | 0x20 == b | 0x20 && (a | 0x20) >= 0x61 && (a | 0x20) <= 0x7a)
}

/// Field names compare case-insensitively (RFC 9110 §5.1); the lengths first, as most differ.
@inline(__always) public func fieldNameIs(_ a: String, _ b: String) -> Bool {
    a.utf8.count == b.utf8.count && a.utf8.elementsEqual(b.utf8, by: asciiCaseInsensitiveEqual)
}
