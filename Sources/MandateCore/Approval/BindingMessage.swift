/// CIBA §7.1 binding_message: a short, plain-text summary shown to the person on their
/// authentication device, so they can tell this request from another.
public enum BindingMessage {
    /// Our bound on a client's binding_message (the spec asks for "relatively short").
    public static let maxLength = 200

    /// §7.1: a client's message is shown as is, so it must be short plain text; else
    /// invalid_binding_message (§13).
    public static func isAcceptable(_ m: String) -> Bool {
        m.unicodeScalars.count <= maxLength && m.unicodeScalars.allSatisfy(isPrintable)
    }

    /// What the proxy asks: "agent did:key:z6Mk…AbCd: POST https://api.example.com/payments amount=100 to=bob".
    public static func summarising(_ r: ApprovalRequest) -> String {
        var s = "agent \(r.agentName.map { "\($0) (\(abbreviated(r.agent)))" } ?? abbreviated(r.agent)): \(r.method) \(r.url)"
        let parameters = keyParameters(r.bodySummary)
        if !parameters.isEmpty { s += " " + parameters }
        return bounded(s)
    }

    /// A JSON object body's top-level scalars as `name=value`; else the summary itself.
    static func keyParameters(_ body: String) -> String {
        guard !body.isEmpty else { return "" }
        guard case .success(let o) = StrictJSON.parseObject(Array(body.utf8)) else { return body }
        return o.members.compactMap { m -> String? in
            switch m.value {
            case .string(let v): "\(m.name)=\(v)"
            case .integer(let i): "\(m.name)=\(i)"
            case .number(let d): "\(m.name)=\(d)"
            case .bool(let b): "\(m.name)=\(b)"
            default: nil
            }
        }.joined(separator: " ")
    }

    /// DIDs are long; the person sees the start and the end (the full DID is in the details).
    static func abbreviated(_ did: String) -> String {
        let u = Array(did.unicodeScalars)
        guard u.count > 32 else { return did }
        return String(String.UnicodeScalarView(u[..<20])) + "…" + String(String.UnicodeScalarView(u[(u.count - 6)...]))
    }

    /// Printable only (controls become spaces), at most `maxLength` characters.
    static func bounded(_ s: String) -> String {
        let all = s.unicodeScalars.map { isPrintable($0) ? $0 : " " }
        guard all.count > maxLength else { return String(String.UnicodeScalarView(all)) }
        return String(String.UnicodeScalarView(all[..<(maxLength - 1)])) + "…"
    }

    static func isPrintable(_ c: Unicode.Scalar) -> Bool {
        switch c.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .privateUse, .unassigned: false
        default: true
        }
    }
}
