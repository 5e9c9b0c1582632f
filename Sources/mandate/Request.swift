import MandateCore
import MandateHTTP
import MandateServer
#if canImport(Glibc)
import Glibc
#endif

/// A curl-like client that signs every request with a fresh DPoP proof, or sends a
/// certificate-bound chain as Bearer over its client certificate (RFC 8705).
enum Request {
    static func run(_ args: [String]) throws -> Int32 {
        let o = try Options(args, valued: ["-X", "-H", "-d", "--key", "--chain", "--cacert", "--cert", "--cert-key"],
                            flags: ["-i", "--print-headers"])
        guard o.positional.count == 1, let url = o.positional.first else {
            throw CLIError(message: "request needs exactly one URL", status: 2)
        }
        let chainPath = try o.required("--chain")
        let tokens = chainLines(try Files.readText(chainPath))
        guard let leaf = tokens.last else { throw CLIError(message: "\(chainPath): holds no token") }
        let certificateBound = (try? DelegationToken.parse(Array(leaf.utf8)[...], limits: .init()).get())?.certificateThumbprint != nil
        let tls = HTTPClient.TLSFiles(caFile: o.one("--cacert"), certificate: o.one("--cert"), key: o.one("--cert-key") ?? o.one("--cert"))
        // A local file mistake is a usage error, not a failed connection.
        for f in [tls.caFile, tls.certificate, tls.key].compactMap({ $0 }) {
            if let why = Files.unreadable(f) { throw CLIError(message: "\(f): cannot read (\(why))", status: 2) }
        }
        if certificateBound && tls.certificate == nil {
            throw CLIError(message: "\(chainPath): the leaf is bound to a client certificate (cnf x5t#S256); give --cert and --cert-key",
                           status: 2)
        }
        var body: [UInt8]? = nil
        if let d = o.one("-d") { body = d.hasPrefix("@") ? try Files.read(String(d.dropFirst())) : Array(d.utf8) }
        let method = o.one("-X") ?? (body == nil ? "GET" : "POST")
        // RFC 9449 §4.2: htu is the target URI without query and fragment.
        let htu = String(url.prefix { $0 != "?" && $0 != "#" })
        var headers: [HTTPHeader]
        if certificateBound {
            headers = [HTTPHeader("Authorization", "Bearer " + leaf)]
        } else {
            let key = try Files.loadKey(try o.required("--key"))
            headers = [
                HTTPHeader("Authorization", "DPoP " + leaf),
                HTTPHeader("DPoP", Mint.proof(key: key, method: method, htu: htu, accessToken: leaf, issuedAt: unixNow(),
                                              jti: Mint.newID())),
            ]
        }
        if tokens.count > 1 { headers.append(HTTPHeader("Agent-Delegation", tokens.dropLast().joined(separator: ", "))) }
        for h in o.values["-H"] ?? [] {
            guard let colon = h.firstIndex(of: ":") else { throw CLIError(message: "-H takes 'Name: value'", status: 2) }
            headers.append(HTTPHeader(String(h[..<colon]), String(h[h.index(after: colon)...]).trimmingCharacters(in: " ")))
        }
        if o.flags.contains("--print-headers") {  // the signed request's fields, not sent (for explain, curl)
            for h in headers { print("\(h.name): \(h.value)") }
            return 0
        }
        let showHeaders = o.flags.contains("-i")
        do {
            let r = try HTTPClient.perform(method: method, url: url, headers: headers, body: body, tls: tls, onHead: { status, hs in
                guard showHeaders else { return }
                var text = "HTTP/1.1 \(status) \(HTTPResponseWriter.reasonPhrase(status))\r\n"
                for h in hs { text += "\(h.name): \(h.value)\r\n" }
                writeAll(1, Array((text + "\r\n").utf8))
            }) { chunk in
                writeAll(1, chunk)
            }
            return r.status >= 200 && r.status < 400 ? 0 : 22  // like curl --fail
        } catch {
            throw CLIError(message: "\(url): \(error.message)", status: 7)
        }
    }
}
