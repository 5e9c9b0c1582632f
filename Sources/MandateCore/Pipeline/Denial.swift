/// A refusal as a value: the HTTP status, the machine code (RFC 6750 / RFC 9449 names where they
/// exist), a description for the client, and a detail for the audit log only.
public struct Denial: Error, Sendable, Equatable {
    public enum Code: String, Sendable {
        case invalidRequest = "invalid_request"          // RFC 6750 §3.1
        case missingCredential = "missing_credential"    // RFC 6750 §3.1: no error code in the challenge
        case invalidToken = "invalid_token"              // RFC 6750 §3.1
        case invalidDPoPProof = "invalid_dpop_proof"     // RFC 9449 §7.1
        case invalidSignature = "invalid_signature"      // an RFC 9421 signature that does not prove possession
        case insufficientScope = "insufficient_scope"    // RFC 6750 §3.1
        case accessDenied = "access_denied"
        case approvalRequired = "approval_required"      // effect approve, and no approval service
        case approvalPending = "approval_pending"        // held for approval_wait; retry with Approval-Id
        case approvalDenied = "approval_denied"
        case approvalExpired = "approval_expired"
        case payloadTooLarge = "payload_too_large"
        case headersTooLarge = "request_header_fields_too_large"
        case uriTooLong = "uri_too_long"
        case requestTimeout = "request_timeout"
        case badGateway = "bad_gateway"
        case gatewayTimeout = "gateway_timeout"
        case notImplemented = "not_implemented"
        case versionNotSupported = "http_version_not_supported"
        case temporarilyUnavailable = "temporarily_unavailable"
    }

    public var status: Int
    public var code: Code
    public var description: String
    /// Extra auth-params for WWW-Authenticate (e.g. `scope`).
    public var requiredScope: String?
    /// Seconds, for a Retry-After field (RFC 9110 §10.2.3) on 503s.
    public var retryAfter: Int?
    /// RFC 9728 §5.1: where a client finds how to authenticate, named in each challenge.
    public var resourceMetadata: String?
    /// The Bearer scheme is acceptable too (a certificate-bound leaf over this mutual TLS
    /// connection): the refusal then carries its challenge as well.
    public var acceptsBearer = false
    /// The approval this refusal is about: sent as `Approval-Id`, for the agent's retry.
    public var approvalID: String?

    public init(_ code: Code, _ description: String, status: Int? = nil, requiredScope: String? = nil) {
        self.code = code
        self.description = description
        self.requiredScope = requiredScope
        self.status = status ?? code.defaultStatus
    }

    /// RFC 9449 §7.1 / RFC 6750 §3: the DPoP challenge for 401s and scope failures.
    public var wwwAuthenticate: String? {
        let metadata = resourceMetadata.map { ", resource_metadata=\"\(Self.quotable($0))\"" } ?? ""
        switch code {
        case .missingCredential:
            return "DPoP algs=\"EdDSA ES256\"" + metadata
        case .invalidToken, .invalidDPoPProof, .invalidSignature, .insufficientScope, .approvalPending:
            var v = "DPoP error=\"\(code.rawValue)\", error_description=\"\(Self.quotable(description))\""
            if let s = requiredScope { v += ", scope=\"\(Self.quotable(s))\"" }
            return v + ", algs=\"EdDSA ES256\"" + metadata
        default:
            return nil
        }
    }

    /// Every acceptable scheme's challenge, one WWW-Authenticate field each (RFC 9110 §11.6.1).
    public var challenges: [String] {
        guard let dpop = wwwAuthenticate else { return [] }
        guard acceptsBearer else { return [dpop] }
        // RFC 6750 §3.1 has no invalid_dpop_proof: the Bearer challenge then carries no error.
        var bearer = "Bearer"
        var params: [String] = []
        if code == .invalidToken || code == .insufficientScope {
            params.append("error=\"\(code.rawValue)\"")
            params.append("error_description=\"\(Self.quotable(description))\"")
            if let s = requiredScope { params.append("scope=\"\(Self.quotable(s))\"") }
        }
        if let m = resourceMetadata { params.append("resource_metadata=\"\(Self.quotable(m))\"") }
        if !params.isEmpty { bearer += " " + params.joined(separator: ", ") }
        return [dpop, bearer]
    }

    /// `{error, error_description, request_id}`.
    public func jsonBody(requestID: String) -> [UInt8] {
        var s = "{\"error\":"
        JSONText.appendString(code.rawValue, to: &s)
        s += ",\"error_description\":"
        JSONText.appendString(description, to: &s)
        s += ",\"request_id\":"
        JSONText.appendString(requestID, to: &s)
        s += "}\n"
        return Array(s.utf8)
    }

    private static func quotable(_ s: String) -> String {
        String(s.unicodeScalars.filter { $0 != "\"" && $0 != "\\" && $0.value >= 0x20 && $0.value < 0x7f }
            .map(Character.init))
    }
}

extension Denial.Code {
    public var defaultStatus: Int {
        switch self {
        case .invalidRequest: 400
        case .missingCredential, .invalidToken, .invalidDPoPProof, .invalidSignature: 401
        case .insufficientScope, .accessDenied, .approvalRequired, .approvalPending, .approvalDenied, .approvalExpired: 403
        case .notImplemented: 501
        case .requestTimeout: 408
        case .payloadTooLarge: 413
        case .uriTooLong: 414
        case .headersTooLarge: 431
        case .badGateway: 502
        case .gatewayTimeout: 504
        case .versionNotSupported: 505
        case .temporarilyUnavailable: 503
        }
    }
}

/// JSON output helpers (escaping per RFC 8259 §7).
public enum JSONText {
    /// `["a","b"]`.
    public static func appendArray(_ values: [String], to out: inout String) {
        out.append("[")
        for (i, v) in values.enumerated() {
            if i > 0 { out.append(",") }
            appendString(v, to: &out)
        }
        out.append("]")
    }

    public static func appendString(_ value: String, to out: inout String) {
        out.append("\"")
        for u in value.unicodeScalars {
            switch u {
            case "\"": out.append("\\\"")
            case "\\": out.append("\\\\")
            case "\n": out.append("\\n")
            case "\r": out.append("\\r")
            case "\t": out.append("\\t")
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out.append("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out.append("\"")
    }
}
