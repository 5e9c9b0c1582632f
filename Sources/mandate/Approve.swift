import MandateCore
import MandateHTTP
import MandateServer

/// `mandate approve|deny ID --key FILE (--url URL | --config FILE)`: shows what is asked, signs
/// the decision with the principal's key (docs/approvals.md) and sends it to the approval service.
enum Approve {
    static func run(_ args: [String], verdict: SignedDecision.Verdict) throws {
        let verb = verdict == .approve ? "approve" : "deny"
        let o = try Options(args, valued: ["--key", "--url", "--config", "--cacert"])
        guard o.positional.count == 1, let id = o.positional.first else {
            throw CLIError(message: "\(verb) needs exactly one approval ID", status: 2)
        }
        // An auth_req_id is base64url: nothing that could leave the path.
        guard !id.isEmpty, id.utf8.count <= 128, Base64URL.decode(id.utf8) != nil else {
            throw CLIError(message: "'\(id)' is not an approval ID", status: 2)
        }
        let keyPath = try o.required("--key")
        let key = try Files.loadKey(keyPath)
        let base = try Approvals.serviceURL(o, verb: verb)
        let tls = HTTPClient.TLSFiles(caFile: o.one("--cacert"))

        let details = try fetch("GET", base + "/approvals/" + id, body: nil, tls: tls, id: id)
        let state = details["state"]?.string ?? "?"
        guard state == "pending" else { throw CLIError(message: "approval \(id) is \(state); nothing to \(verb)") }
        guard let principal = details["principal"]?.string, let message = details["binding_message"]?.string,
              let opened = details["opened_at"]?.integer, let expires = details["expires_at"]?.integer else {
            throw CLIError(message: "\(base): the approval service's answer lacks principal, binding_message or expiry")
        }
        var request: BoundRequest?
        if let r = details["request"], r != .null {
            guard let o = r.object, let b = BoundRequest(json: o) else { throw CLIError(message: "\(base): the approval's request is malformed") }
            request = b
        }
        // The principal's key, when its DID names one here; a did:web principal's is checked by the service.
        var kid: String?
        if case .success(let r) = DID.resolve(principal) {
            guard r.key.thumbprint == key.thumbprint else {
                throw CLIError(message: "\(keyPath): not the key of \(principal), who is asked (this key is \(key.did))")
            }
            kid = r.methodID
        }

        var err = StandardError()
        var summary = "\(verb) \(id)\n  principal  \(principal)\n  asks       \(message)\n"
        if let a = details["agent"]?.string { summary += "  agent      \(a)\n" }
        if let r = request {
            summary += "  request    \(r.method) \(r.url)\n  body       sha-256 \(r.bodySHA256)\n"
            if let s = details["body_summary"]?.string, !s.isEmpty { summary += "             \(s)\n" }
            summary += "  chain      \(r.chain.joined(separator: " -> "))\n"
        } else if let c = details["client"]?.string {
            summary += "  client     \(c)\n"
        }
        let now = unixNow()
        summary += "  expires in \(max(0, expires.subtractingReportingOverflow(now).partialValue)) s"
        print(summary, to: &err)

        let subject = SignedDecision.Subject(id: id, principal: principal, bindingMessage: message, request: request,
                                             openedAt: opened, expiresAt: expires)
        let receipt = SignedDecision.sign(verdict, on: subject, key: key, kid: kid, issuedAt: now)
        var body = "{\"receipt\":"
        JSONText.appendString(receipt, to: &body)
        body += "}"
        let answer = try fetch("POST", base + "/approvals/" + id + "/decision", body: Array(body.utf8), tls: tls, id: id)
        print("mandate: \(answer["state"]?.string ?? verb) \(id)", to: &err)
    }

    /// One request to the approval service; its JSON answer, or a CLIError saying what went wrong.
    static func fetch(_ method: String, _ url: String, body: [UInt8]?, tls: HTTPClient.TLSFiles, id: String) throws -> JSONObject {
        let r: HTTPClient.Response
        do {
            r = try HTTPClient.perform(method: method, url: url,
                                       headers: body == nil ? [] : [HTTPHeader("Content-Type", "application/json")],
                                       body: body, timeout: 15, tls: tls)
        } catch {
            throw CLIError(message: "cannot reach the approval service at \(url): \(error.message)")
        }
        let json = try? StrictJSON.parseObject(r.body).get()
        guard r.status == 200, let json else {
            if r.status == 404 { throw CLIError(message: "approval \(id) is unknown or already used") }
            let why = json?["error_description"]?.string ?? "HTTP \(r.status)"
            throw CLIError(message: "approval \(id): \(why)")
        }
        return json
    }
}
