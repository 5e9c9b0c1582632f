/// The approval page's HTML: plain HTML and a little inline CSS, no script, no external
/// resource. Every value is escaped: agents choose URLs and bodies (docs/approvals.md, "The page").
public enum ApprovalPage {
    /// Sent with every page: nothing but inline style loads, forms post only here, no framing.
    /// `Referrer-Policy: same-origin`, not no-referrer: under no-referrer a browser sends
    /// `Origin: null` with every POST (Fetch §3.1, "append a request Origin header"), and the
    /// forms' Origin could not be checked. The sign-in response, whose URL holds the token,
    /// says no-referrer (`signInFields`).
    public static let securityFields: [(String, String)] = [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
        ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "same-origin"), ("Cache-Control", "no-store"),
        ("X-Frame-Options", "DENY"),
    ]

    public static var signInFields: [(String, String)] {
        securityFields.map { $0.0 == "Referrer-Policy" ? ($0.0, "no-referrer") : $0 }
    }

    /// What a decision made on the page says on the next page (`/?decided=…`).
    public enum Notice: String, Sendable {
        case approved, denied, signedOut = "signed-out"
        var text: String {
            switch self {
            case .approved: "Approved: the agent's request goes ahead."
            case .denied: "Denied: the agent's request is refused."
            case .signedOut: "Signed out."
            }
        }
    }

    /// Without a session: how to sign in.
    public static func signIn(issuer: String, notice: Notice? = nil) -> [UInt8] {
        var b = "<h1>Approvals</h1>\n"
        if let notice { b += "<p class=\"notice\">\(escape(notice.text))</p>\n" }
        b += """
        <p>Not signed in. Make a sign-in link with your principal's key, then open it in this browser:</p>
        <pre>mandate approvals login --key YOUR-KEY.jwk --url \(escape(issuer))</pre>
        <p>The link works once, for at most ten minutes; the session it opens lasts twelve hours.</p>

        """
        return document("Approvals", b)
    }

    /// After `GET /login`: a page of this origin moves on to the list, so that the SameSite=Strict
    /// cookie is sent (a redirect that a cross-site link started would go without it).
    public static func signedIn(principal: String, name: String? = nil) -> [UInt8] {
        document("Signed in", """
        <h1>Signed in</h1>
        <p>Signed in as \(who(principal, name)). <a href="./">Continue to your approvals</a>.</p>

        """, refresh: "./")
    }

    static func who(_ principal: String, _ name: String?) -> String {
        (name.map { "<b class=\"name\">\(escape($0))</b> " } ?? "") + "<code>\(escape(principal))</code>"
    }

    /// The principal's pending approvals (newest first), each with Approve and Deny.
    public static func pending(principal: String, name: String? = nil, _ entries: [BackchannelRequests.Entry], csrf: String,
                               now: Int64, notice: Notice? = nil) -> [UInt8] {
        // The name first: a sign-in link from someone else would show their name (login CSRF).
        var b = "<h1>Approvals</h1>\n<p class=\"who\">Signed in as \(who(principal, name))</p>\n"
        if let notice { b += "<p class=\"notice\">\(escape(notice.text))</p>\n" }
        if entries.isEmpty { b += "<p class=\"empty\">Nothing is waiting for your approval.</p>\n" }
        for e in entries { b += approval(e, csrf: csrf, now: now) }
        b += "<form method=\"post\" action=\"logout\" class=\"out\">\(hidden("csrf", csrf))<button type=\"submit\">Sign out</button></form>\n"
        return document("Approvals (\(entries.count))", b)
    }

    static func approval(_ e: BackchannelRequests.Entry, csrf: String, now: Int64) -> String {
        var b = "<section class=\"approval\" data-id=\"\(escape(e.id))\">\n"
        b += "<h2>\(escape(e.bindingMessage.isEmpty ? "An approval request" : e.bindingMessage))</h2>\n<dl>\n"
        if let a = e.approval {
            let name = a.agentName.map { "<b class=\"agent-name\">\(escape($0))</b> " } ?? ""
            b += row("Agent", name + "<code class=\"agent\">\(escape(a.agent))</code>")
            if let o = a.organization { b += row("Organization", "<code>\(escape(o))</code>") }
            b += row("Chain", "<ol class=\"chain\">" + a.chain.map { "<li><code>\(escape($0))</code></li>" }.joined() + "</ol>")
            b += row("Request", "<code class=\"request\"><span class=\"method\">\(escape(a.method))</span> <span class=\"url\">\(escape(a.url))</span></code>")
            let body = a.bodySummary.isEmpty ? "<i>no body</i>" : "<pre class=\"body\">\(escape(a.bodySummary))</pre>"
            b += row("Body", body + "<small>SHA-256 <code>\(escape(a.bodySHA256))</code></small>")
            b += row("Route", "<code>\(escape(a.route))</code>")
        } else if case .ciba(let c) = e.client {
            b += row("Asked by", "<code>\(escape(c))</code> (a CIBA client)")
        }
        b += row("Expires", "\(escape(utc(e.expiresAt))) (in \(escape(remaining(e.expiresAt - now))))")
        b += row("Id", "<code>\(escape(e.id))</code>")
        b += "</dl>\n<div class=\"decide\">"
        for (verdict, label) in [("approve", "Approve"), ("deny", "Deny")] {
            b += "<form method=\"post\" action=\"approvals/\(escape(e.id))/web-decision\">\(hidden("csrf", csrf))\(hidden("decision", verdict))"
            b += "<button type=\"submit\" class=\"\(verdict)\">\(label)</button></form>"
        }
        return b + "</div>\n</section>\n"
    }

    /// A refusal: its status, machine code, description and the request id.
    public static func refusal(_ r: PageRefusal, requestID: String, issuer: String) -> [UInt8] {
        var b = "<h1>\(r.status): \(escape(r.code.rawValue))</h1>\n<p class=\"error\">\(escape(r.description))</p>\n"
        if r.status == 401 {
            b += "<p>Sign in with <code>mandate approvals login --key YOUR-KEY.jwk --url \(escape(issuer))</code>.</p>\n"
        }
        b += "<p><a href=\"\(escape(issuer))/\">Back to the approvals</a> · request id <code>\(escape(requestID))</code></p>\n"
        return document("Refused", b)
    }

    static func row(_ name: String, _ html: String) -> String { "<dt>\(name)</dt><dd>\(html)</dd>\n" }

    static func hidden(_ name: String, _ value: String) -> String {
        "<input type=\"hidden\" name=\"\(name)\" value=\"\(escape(value))\">"
    }

    static func document(_ title: String, _ body: String, refresh: String? = nil) -> [UInt8] {
        let meta = refresh.map { "<meta http-equiv=\"refresh\" content=\"0;url=\(escape($0))\">" } ?? ""
        return Array("""
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">\(meta)
        <title>\(escape(title)) · Mandate</title>
        <style>
        body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#f5f5f4;color:#1c1917}
        main{max-width:52rem;margin:0 auto;padding:1rem}
        code,pre{font:13px ui-monospace,monospace;word-break:break-all;white-space:pre-wrap}
        .approval{background:#fff;border:1px solid #d6d3d1;border-radius:8px;padding:0 1rem 1rem;margin:1rem 0}
        dl{display:grid;grid-template-columns:7rem 1fr;gap:.3rem .8rem}dt{color:#57534e}dd{margin:0}
        ol{margin:0;padding-left:1.2rem}pre{margin:0;background:#f5f5f4;padding:.4rem}
        .decide form{display:inline}button{font:inherit;padding:.4rem 1.2rem;margin-right:.6rem;border-radius:6px;border:1px solid #a8a29e;cursor:pointer}
        .approve{background:#15803d;color:#fff;border-color:#15803d}.deny{background:#b91c1c;color:#fff;border-color:#b91c1c}
        .notice{background:#ecfccb;padding:.5rem}.error{background:#fee2e2;padding:.5rem}.out{margin-top:2rem}
        </style></head>
        <body><main>
        \(body)</main></body></html>

        """.utf8)
    }

    /// HTML-escaped text, for element content and quoted attribute values.
    public static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// `2025-01-31 12:00:00 UTC`.
    static func utc(_ t: Int64) -> String { CivilTime(unixSeconds: t).text }

    static func remaining(_ s: Int64) -> String {
        let s = max(0, s)
        return s >= 60 ? "\(s / 60) min \(s % 60) s" : "\(s) s"
    }
}
