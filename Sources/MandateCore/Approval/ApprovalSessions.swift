import MandateCrypto

/// The signed-in principals of the approval page: a pure, bounded table with an explicit clock.
/// The cookie is 32 random bytes; only its SHA-256 is kept, so the table cannot sign anyone in.
public struct ApprovalSessions: Sendable {
    public static let cookieName = "mandate_approval"

    /// Over https the `__Host-` prefix (RFC 6265bis §4.1.3.2): the browser then keeps only a
    /// cookie this host set with Secure and Path=/, so a sibling subdomain cannot plant one.
    public static func cookieName(secure: Bool) -> String { secure ? "__Host-" + cookieName : cookieName }
    /// 12 hours (the cookie's Max-Age).
    public static let lifetime: Int64 = 43_200

    public struct Session: Sendable, Equatable {
        public var principal: String
        public var expiresAt: Int64
        /// Sent back in every form of the page; compared in constant time.
        public var csrf: String
    }

    public let capacity: Int
    private var byHash: [[UInt8]: Session] = [:]

    public init(capacity: Int = 1000) { self.capacity = max(1, capacity) }

    public var count: Int { byHash.count }

    /// A new session for `principal`; the cookie value goes to the browser and is not kept.
    /// When full, the session closest to its expiry makes room (only principals sign in, so the
    /// table fills only with their own sessions).
    public mutating func open(principal: String, now: Int64) -> (cookie: String, session: Session) {
        if byHash.count >= capacity { byHash = byHash.filter { $0.value.expiresAt > now } }
        if byHash.count >= capacity, let oldest = byHash.min(by: { $0.value.expiresAt < $1.value.expiresAt }) {
            byHash[oldest.key] = nil
        }
        let cookie = Base64URL.encode(Random.bytes(32))
        let s = Session(principal: principal, expiresAt: now + Self.lifetime, csrf: Base64URL.encode(Random.bytes(32)))
        byHash[SHA256.hash(Array(cookie.utf8))] = s
        return (cookie, s)
    }

    /// The unexpired session `cookie` names.
    public func session(cookie: String, now: Int64) -> Session? {
        guard let s = byHash[SHA256.hash(Array(cookie.utf8))], s.expiresAt > now else { return nil }
        return s
    }

    public mutating func close(cookie: String) { byHash[SHA256.hash(Array(cookie.utf8))] = nil }

    /// The `mandate_approval` cookie among `Cookie` field values (RFC 6265 §5.4); nil when absent,
    /// or sent more than once (which one would be meant is unknown: none is).
    public static func cookie(in fields: [String], named name: String = cookieName) -> String? {
        var found: [Substring] = []
        for f in fields {
            for pair in f.split(separator: ";") {
                let p = pair.trimmingSpaces
                guard let eq = p.firstIndex(of: "="), p[..<eq] == name else { continue }
                found.append(p[p.index(after: eq)...])
            }
        }
        guard found.count == 1, let v = found.first, !v.isEmpty, v.utf8.count <= 64 else { return nil }
        return String(v)
    }
}

/// Why the approval page refused: a value with its HTTP status and machine code.
public struct PageRefusal: Error, Sendable, Equatable {
    public enum Code: String, Sendable {
        case noSession = "no_session"
        case invalidLogin = "invalid_login"
        case invalidToken = "invalid_token"
        case invalidCSRF = "invalid_csrf"
        case crossOrigin = "cross_origin_request"
        case notYourApproval = "not_your_approval"
        case alreadyDecided = "already_decided"
        case approvalExpired = "approval_expired"
        case unknownApproval = "unknown_approval"
        case invalidRequest = "invalid_request"
        case temporarilyUnavailable = "temporarily_unavailable"
    }

    public var code: Code
    public var description: String
    public var status: Int

    public init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
        switch code {
        case .noSession, .invalidLogin, .invalidToken: status = 401
        case .unknownApproval: status = 404
        case .invalidRequest: status = 400
        case .temporarilyUnavailable: status = 503
        default: status = 403
        }
    }
}
