import FoundationEssentials
import MandateCore
import MandateLoad

/// `mandate loadgen`: closed- or open-loop HTTP load with a fresh DPoP proof per request.
enum Loadgen {
    static func run(_ args: [String]) throws {
        let o = try Options(args, valued: ["-c", "-d", "-R", "-t", "--warmup", "--timeout", "-X", "-H", "--body", "--origin",
                                           "--json", "--key", "--chain", "--principal-key", "--identities", "--alg",
                                           "--scope", "--ttl", "--minters", "--write-identities", "--queue"],
                            flags: ["--no-auth", "--reuse-proof", "--quiet"])
        let identityDir = o.one("--write-identities")
        var principalPath = o.one("--principal-key")
        if let dir = identityDir {
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            principalPath = principalPath ?? "\(dir)/principal.jwk"
        }
        var principal: SigningKey? = nil
        if let path = principalPath {
            principal = FileManager.default.fileExists(atPath: path) ? try Files.loadKey(path) : SigningKey.generate(.edDSA)
            if !FileManager.default.fileExists(atPath: path) { try Files.writePrivate(path, principal!.privateJWK.serialized() + [0x0a]) }
        }
        if let dir = identityDir, let principal {
            try Files.write("\(dir)/principal.did", principal.did + "\n")
            try Files.write("\(dir)/principal.conf", "principal \(principal.did) { name \"mandate loadgen\"; }\n")
            if o.positional.isEmpty {
                print("\(dir)/principal.jwk  \(principal.did)\n\(dir)/principal.conf  (include it in the target's config)")
                return
            }
        }
        guard o.positional.count == 1, let url = o.positional.first else {
            throw CLIError(message: "loadgen needs exactly one URL", status: 2)
        }
        let target = try TargetURL(url)
        let connections = try count(o, "-c", default: 64)
        let threads = try count(o, "-t", default: 1)
        let duration = try seconds(o.one("-d") ?? "10s")
        let warmup = try o.one("--warmup").map { try seconds($0, allowZero: true) } ?? 0
        let timeout = try seconds(o.one("--timeout") ?? "5s")
        var mode = LoadPlan.Mode.closed
        if let r = o.one("-R") {
            guard let rate = Double(r), rate > 0, rate <= 10_000_000 else { throw CLIError(message: "-R takes requests per second", status: 2) }
            mode = .open(rate: rate)
        }
        var body: [UInt8] = []
        if let d = o.one("--body") { body = d.hasPrefix("@") ? try Files.read(String(d.dropFirst())) : Array(d.utf8) }
        let method = o.one("-X") ?? (body.isEmpty ? "GET" : "POST")
        var headers: [(name: String, value: String)] = []
        for h in o.values["-H"] ?? [] {
            guard let colon = h.firstIndex(of: ":") else { throw CLIError(message: "-H takes 'Name: value'", status: 2) }
            headers.append((String(h[..<colon]), String(h[h.index(after: colon)...]).trimmingCharacters(in: " ")))
        }
        let template = RequestTemplate(method: method, target: target.target, host: target.hostHeader, headers: headers,
                                       body: body, origin: o.one("--origin") ?? target.origin)
        let plan = LoadPlan(host: target.host, port: target.port, mode: mode, connections: connections, threads: threads,
                            duration: duration, warmup: warmup, timeout: timeout, template: template)

        var identities: [AgentIdentity]? = nil
        if !o.flags.contains("--no-auth") {
            if let keyPath = o.one("--key") {
                let chainPath = try o.required("--chain")
                let tokens = chainLines(try Files.readText(chainPath))
                guard let leaf = tokens.last else { throw CLIError(message: "\(chainPath): holds no token") }
                identities = [AgentIdentity(key: try Files.loadKey(keyPath), leaf: leaf, ancestors: Array(tokens.dropLast()))]
            } else if let principal {
                let alg: JWSAlgorithm
                switch o.one("--alg") ?? "EdDSA" {
                case "EdDSA": alg = .edDSA
                case "ES256": alg = .es256
                default: throw CLIError(message: "--alg takes EdDSA or ES256", status: 2)
                }
                identities = AgentIdentity.mint(count: try count(o, "--identities", default: 16), principal: principal, alg: alg,
                                                scope: o.one("--scope") ?? "invoices:read",
                                                ttl: try parseDuration(o.one("--ttl") ?? "1h"), now: unixNow())
            } else {
                throw CLIError(message: """
                    loadgen needs credentials the target accepts: --principal-key FILE (created when missing; enroll its DID), \
                    --write-identities DIR, --key FILE --chain FILE, or --no-auth for plain requests
                    """, status: 2)
            }
        }
        let minters = try count(o, "--minters", default: allowedCPUs())
        let queue = try count(o, "--queue", default: 8192)
        let result: LoadResult
        do {
            result = try LoadRun.run(plan, identities: identities, minters: minters, queueCapacity: queue,
                                     reuseProofs: o.flags.contains("--reuse-proof"))
        } catch { throw CLIError(message: "\(url): \(error.text)") }
        if !o.flags.contains("--quiet") { writeAll(1, Array(LoadReport.table(result, url: url).utf8)) }
        if let path = o.one("--json") { try Files.write(path, String(decoding: LoadReport.json(result, url: url).serialized(), as: UTF8.self) + "\n") }
    }

    static func count(_ o: Options, _ name: String, default value: Int) throws -> Int {
        guard let text = o.one(name) else { return value }
        guard let n = Int(text), n > 0, n <= 1_000_000 else { throw CLIError(message: "\(name) takes a positive count", status: 2) }
        return n
    }

    /// `500ms`, `2s`, `1.5s`, `1m`, or seconds.
    static func seconds(_ s: String, allowZero: Bool = false) throws -> Double {
        var text = Substring(s), factor = 1.0
        if text.hasSuffix("ms") { text = text.dropLast(2); factor = 0.001 }
        else if text.hasSuffix("s") { text = text.dropLast() }
        else if text.hasSuffix("m") { text = text.dropLast(); factor = 60 }
        guard let v = Double(text), v.isFinite, allowZero ? v >= 0 : v > 0, v * factor <= 86400 else {
            throw CLIError(message: "'\(s)' is not a duration (like 500ms, 10s, 1m)", status: 2)
        }
        return v * factor
    }

    /// CPUs this process may run on (`taskset` narrows it), from /proc/self/status.
    static func allowedCPUs() -> Int {
        guard let status = try? Files.readText("/proc/self/status"),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed:") }) else { return 1 }
        let hex = line.dropFirst("Cpus_allowed:".count).filter { $0 != "," && $0 != " " && $0 != "\t" }
        return max(1, hex.reduce(0) { $0 + (Int(String($1), radix: 16) ?? 0).nonzeroBitCount })
    }
}

/// `http://host[:port][/path]`: plain HTTP only (TLS belongs in front of the proxy, not in its benchmark).
struct TargetURL {
    var host: String
    var port: Int
    var target: String
    var origin: String
    var hostHeader: String

    init(_ url: String) throws {
        guard url.hasPrefix("http://") else { throw CLIError(message: "loadgen speaks plain http:// only", status: 2) }
        let rest = url.dropFirst(7)
        let authority = rest.prefix { $0 != "/" && $0 != "?" }
        target = String(rest.dropFirst(authority.count))
        if target.isEmpty || target.hasPrefix("?") { target = "/" + target }
        if let colon = authority.lastIndex(of: ":"), !authority.hasSuffix("]") {
            guard let p = Int(authority[authority.index(after: colon)...]), (1...65535).contains(p) else {
                throw CLIError(message: "\(url): bad port", status: 2)
            }
            host = String(authority[..<colon]); port = p
        } else {
            host = String(authority); port = 80
        }
        host = host.trimmingCharacters(in: "[]")
        guard !host.isEmpty else { throw CLIError(message: "\(url): no host", status: 2) }
        hostHeader = String(authority)
        origin = "http://" + authority
    }
}
