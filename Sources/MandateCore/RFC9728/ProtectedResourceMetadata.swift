import MandateHTTP

/// RFC 9728: what a client needs to know to call this resource, at
/// `/.well-known/oauth-protected-resource` of the public origin (§3), unauthenticated.
public struct ProtectedResourceMetadata: Sendable {
    public static let path = "/.well-known/oauth-protected-resource"
    /// The JSON document (§2), built once per configuration.
    public let document: [UInt8]
    /// Its URL, for `resource_metadata` in challenges (§5.1).
    public let url: String

    /// `resource` is the normalised public origin: §3.3 wants it to be the URL the metadata was
    /// fetched from without the well-known suffix.
    public init(config: ProxyConfig, resource: String) {
        url = resource + Self.path
        let mtls = config.listen.contains { ($0.tls?.verifyClient ?? .off) != .off }
        var scopes: [String] = []
        for r in config.routes { for s in r.scopes where !scopes.contains(s) { scopes.append(s) } }
        var s = "{\"resource\":"
        JSONText.appendString(resource, to: &s)
        if !config.oauthIssuers.isEmpty {
            s += ",\"authorization_servers\":"
            JSONText.appendArray(config.oauthIssuers.map(\.issuer), to: &s)
        }
        s += ",\"bearer_methods_supported\":[\"header\"]"
        if !scopes.isEmpty {
            s += ",\"scopes_supported\":"
            JSONText.appendArray(scopes, to: &s)
        }
        s += ",\"dpop_signing_alg_values_supported\":[\"EdDSA\",\"ES256\"]"
        // Always DPoP unless certificate-bound tokens (RFC 8705 §3.1) or plain Bearer routes are possible too.
        let bearer = !config.oauthIssuers.isEmpty && config.routes.contains(where: \.allowBearer)
        s += ",\"dpop_bound_access_tokens_required\":" + (mtls || bearer ? "false" : "true")
        s += ",\"tls_client_certificate_bound_access_tokens\":" + (mtls ? "true" : "false")
        s += "}\n"
        document = Array(s.utf8)
    }

    /// GET and HEAD get the document; other methods 405 (RFC 9110 §15.5.6).
    public func answer(method: String) -> LocalAnswer {
        if method == "GET" || method == "HEAD" {
            return LocalAnswer(status: 200, headers: [HTTPHeader("Content-Type", "application/json"),
                                                      HTTPHeader("Cache-Control", "max-age=300")], body: document)
        }
        let d = Denial(.invalidRequest, "the resource metadata is read with GET", status: 405)
        return LocalAnswer(status: 405, headers: [HTTPHeader("Content-Type", "application/json"), HTTPHeader("Allow", "GET, HEAD")],
                           body: d.jsonBody(requestID: ""), denial: d)
    }
}
