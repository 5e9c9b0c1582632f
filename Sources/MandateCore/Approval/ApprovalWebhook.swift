/// Tells a principal that an approval waits: one JSON POST to their `webhook`, in a shape that
/// both Slack-style incoming webhooks (`text`) and ntfy's JSON publishing (`topic`, `title`,
/// `message`, `click`, `actions`) read (docs/approvals.md, "Webhook"). No secret goes in it: the
/// id alone cannot decide.
public struct ApprovalWebhook: Sendable, Equatable {
    /// Where it is POSTed: the configured URL without its fragment.
    public var endpoint: String
    public var body: [UInt8]

    /// ntfy topic names (its `topicRegex`).
    public static func isTopic(_ s: Substring) -> Bool {
        (1...64).contains(s.utf8.count) && s.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7a) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_")
        }
    }

    /// Slack reads `<…>` in `text` as a link (`<https://x|label>`) or a mention (`<!channel>`), and
    /// agents choose what the message says: Slack's own escaping of &, < and > keeps it plain text.
    static func slackEscaped(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// `webhook` is the principal's configured URL; its fragment, which HTTP never sends, names
    /// the ntfy topic (`https://ntfy.sh/#alice-approvals`: POST to https://ntfy.sh/, topic
    /// alice-approvals). `page`: the approval page's URL (public_url + "/").
    public init(webhook: String, entry e: BackchannelRequests.Entry, page: String) {
        var topic: Substring?
        if let hash = webhook.firstIndex(of: "#") {
            endpoint = String(webhook[..<hash])
            let fragment = webhook[webhook.index(after: hash)...]
            if Self.isTopic(fragment) { topic = fragment }
        } else {
            endpoint = webhook
        }
        var approval: [(String, JSONValue)] = [("id", .string(e.id)), ("principal", .string(e.principal))]
        if let a = e.approval {
            approval += [("agent", .string(a.agent)), ("agent_name", a.agentName.map(JSONValue.string) ?? .null), ("chain", .array(a.chain.map(JSONValue.string))), ("method", .string(a.method)),
                         ("url", .string(a.url)), ("body_sha256", .string(a.bodySHA256))]
        }
        if case .ciba(let c) = e.client { approval.append(("client", .string(c))) }
        approval += [("binding_message", .string(e.bindingMessage)), ("expires_at", .integer(e.expiresAt))]
        let message = e.bindingMessage.isEmpty ? "An approval is waiting for you" : e.bindingMessage
        var members: [(String, JSONValue)] = [
            ("text", .string(Self.slackEscaped("\(message) — approve or deny at \(page)"))),
            ("title", .string("Approval needed")), ("message", .string(message)), ("click", .string(page)),
        ]
        if let topic { members.append(("topic", .string(String(topic)))) }
        members += [
            ("actions", .array([.object(JSONObject(members: [("action", .string("view")), ("label", .string("Review")),
                                                             ("url", .string(page))]))])),
            ("approval", .object(JSONObject(members: approval))),
        ]
        body = JSONObject(members: members).serialized()
    }
}
