import MandateCore
import MandateHTTP

/// `mandate explain`: run the whole verification offline on a request described by flags and
/// print the decision, as the proxy would make it now. For operators debugging a refusal.
enum Explain {
    static func run(_ args: [String]) throws -> Int32 {
        let o = try Options(args, valued: ["--config", "-X", "-H"])
        let config = try Serve.load(try o.required("--config"))
        let verifier: Verifier
        do { verifier = try Verifier(config: config) } catch { throw CLIError(message: error.text) }
        guard o.positional.count == 1 else { throw CLIError(message: "explain needs a path like /invoices/1", status: 2) }
        var headers = [HTTPHeader("Host", "explain")]
        for h in o.values["-H"] ?? [] {
            guard let colon = h.firstIndex(of: ":") else { throw CLIError(message: "-H takes 'Name: value'", status: 2) }
            headers.append(HTTPHeader(String(h[..<colon]), String(h[h.index(after: colon)...]).trimmingCharacters(in: " ")))
        }
        let head = HTTPRequestHead(method: o.one("-X") ?? "GET", target: o.positional[0], headers: headers)
        switch verifier.admit(head, peer: "127.0.0.1", requestID: "explain", now: unixNow()) {
        case .forward(let plan):
            print("forward \(plan.target)")
            for h in plan.headers { print("  \(h.name): \(h.value)") }
            return 0
        case .refuse(let d, _):
            print("refuse \(d.status) \(d.code.rawValue): \(d.description)")
            return 1
        }
    }
}
