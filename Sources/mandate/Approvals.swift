import MandateCore
import MandateHTTP
import MandateServer

/// `mandate approvals login|list --key FILE (--url URL | --config FILE)`: sign in to the approval
/// page, or list the pending approvals, with a sign-in token signed by the principal's key
/// (docs/approvals.md, "Signing in").
enum Approvals {
    static func run(_ args: [String]) throws {
        guard let sub = args.first, sub == "login" || sub == "list" else {
            throw CLIError(message: "approvals needs login or list\n\(commandUsage("approvals") ?? "")", status: 2)
        }
        let o = try Options(Array(args.dropFirst()), valued: ["--key", "--url", "--config", "--cacert", "--principal", "--ttl"],
                            flags: sub == "list" ? ["--json"] : [])
        guard o.positional.isEmpty else { throw CLIError(message: "approvals \(sub): unexpected '\(o.positional[0])'", status: 2) }
        let keyPath = try o.required("--key")
        let key = try Files.loadKey(keyPath)
        let base = try serviceURL(o, verb: "approvals \(sub)")
        let principal = o.one("--principal") ?? key.did
        var kid: String?
        if case .success(let r) = DID.resolve(principal) {
            guard r.key.thumbprint == key.thumbprint else {
                throw CLIError(message: "\(keyPath): not the key of \(principal) (this key is \(key.did))")
            }
            kid = r.methodID
        }
        let ttl = try o.one("--ttl").map(parseDuration) ?? 300
        guard ttl <= ApprovalLogin.maxLifetime else {
            throw CLIError(message: "--ttl: a sign-in token lives at most \(ApprovalLogin.maxLifetime / 60) minutes", status: 2)
        }
        let token = ApprovalLogin.sign(key: key, principal: principal, kid: kid, audience: base, issuedAt: unixNow(), ttl: ttl)
        var err = StandardError()
        if sub == "login" {
            // A JWS is base64url and dots: nothing to escape in a query.
            print("\(base)/login?token=\(token)")
            print("mandate: open this link in your browser to sign in as \(principal); it works once, within \(ttl / 60 > 0 ? "\(ttl / 60) min" : "\(ttl) s")",
                  to: &err)
            return
        }
        let url = base + "/approvals"
        let r: HTTPClient.Response
        do {
            r = try HTTPClient.perform(method: "GET", url: url, headers: [HTTPHeader("Authorization", "Bearer \(token)")], body: nil,
                                       timeout: 15, tls: HTTPClient.TLSFiles(caFile: o.one("--cacert")))
        } catch {
            throw CLIError(message: "cannot reach the approval service at \(url): \(error.message)")
        }
        guard r.status == 200, case .success(let json) = StrictJSON.parseObject(r.body), let items = json["approvals"]?.array else {
            let why = (try? StrictJSON.parseObject(r.body).get())?["error_description"]?.string ?? "HTTP \(r.status)"
            throw CLIError(message: "\(url): \(why)")
        }
        if o.flags.contains("--json") {
            writeAll(1, r.body)
            return
        }
        if items.isEmpty { print("mandate: nothing is waiting for \(principal)'s approval", to: &err) }
        let now = unixNow()
        for item in items {
            guard let a = item.object, let id = a["auth_req_id"]?.string else { continue }
            var text = "\(id)\n  asks       \(a["binding_message"]?.string ?? "")\n"
            if let agent = a["agent"]?.string { text += "  agent      \(agent)\n" }
            if let req = a["request"]?.object, let m = req["method"]?.string, let u = req["url"]?.string { text += "  request    \(m) \(u)\n" }
            if let s = a["body_summary"]?.string, !s.isEmpty { text += "  body       \(s)\n" }
            if let c = a["client"]?.string { text += "  client     \(c)\n" }
            if let e = a["expires_at"]?.integer { text += "  expires in \(max(0, e.subtractingReportingOverflow(now).partialValue)) s\n" }
            print(text)
        }
    }

    /// The approval service's public_url: `--url`, or the `approval` block of `--config`.
    static func serviceURL(_ o: Options, verb: String) throws -> String {
        var base: String
        if let u = o.one("--url") {
            base = u
        } else if let c = o.one("--config") {
            guard let a = try Serve.load(c).approval, !a.publicURL.isEmpty else {
                throw CLIError(message: "\(c): no approval block with a public_url")
            }
            base = a.publicURL
        } else {
            throw CLIError(message: "\(verb) needs --url APPROVAL_URL or --config FILE", status: 2)
        }
        while base.hasSuffix("/") { base.removeLast() }
        return base
    }
}
