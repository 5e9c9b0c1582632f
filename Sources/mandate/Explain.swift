import Dispatch
import FoundationEssentials
import MandateCore
import MandateRegistry
import MandateServer
import MandateHTTP
#if canImport(Glibc)
import Glibc
#endif

/// `mandate explain`: run the whole verification offline on a request described by flags and
/// print the decision, as the proxy would make it now. For operators debugging a refusal.
enum Explain {
    static func run(_ args: [String]) throws -> Int32 {
        let o = try Options(args, valued: ["--config", "-X", "-H", "--headers", "--cert"])
        let config = try Serve.load(try o.required("--config"))
        let verifier: Verifier
        var resolvers = try services(for: config)
        // The registry as the proxy sees it, when state_dir holds one (never created here).
        if let dir = config.stateDir, FileManager.default.fileExists(atPath: dir + "/" + RegistryStore.fileName),
           let store = try RegistryPlace.open(config, try o.required("--config")) {
            do { resolvers.registry = LiveRegistry(try store.view(now: unixNow())) } catch { throw CLIError(message: error.message) }
        }
        do { verifier = try Verifier(config: config, resolvers: resolvers) } catch { throw CLIError(message: error.text) }
        guard o.positional.count == 1 else { throw CLIError(message: "explain needs a path like /invoices/1", status: 2) }
        var headers = [HTTPHeader("Host", "explain")]
        func field(_ h: Substring, _ origin: String) throws -> HTTPHeader {
            guard let colon = h.firstIndex(of: ":") else { throw CLIError(message: "\(origin): takes 'Name: value'", status: 2) }
            return HTTPHeader(String(h[..<colon]), String(h[h.index(after: colon)...]).trimmingCharacters(in: " "))
        }
        // --headers FILE (or - for stdin): "Name: value" lines, as `mandate request --print-headers` writes them.
        if let path = o.one("--headers") {
            let text = path == "-" ? readStandardInput() : try Files.readText(path)
            for (i, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated()
            where !String(line).trimmingCharacters(in: " \t").isEmpty {
                headers.append(try field(line, "\(path):\(i + 1)"))
            }
        }
        for h in o.values["-H"] ?? [] { headers.append(try field(h[...], "-H")) }
        let head = HTTPRequestHead(method: o.one("-X") ?? "GET", target: o.positional[0], headers: headers)
        // --cert: as if over mutual TLS with this (verified) client certificate.
        var peer = Peer(address: "127.0.0.1")
        if let c = o.one("--cert") {
            do { peer = Peer(address: "127.0.0.1", tls: true, certificate: try CertificateFile.load(c).certificate) }
            catch { throw CLIError(message: "\(error)", status: 2) }
        }
        var admission = verifier.admit(head, peer: peer, requestID: "explain", now: unixNow())
        // A did:web document being fetched: wait for it, as the server does.
        for _ in 0 ..< 4 {
            guard case .wait(let r) = admission else { break }
            let done = DispatchSemaphore(value: 0)
            r.whenReady { done.signal() }
            done.wait()
            admission = verifier.admit(head, peer: peer, requestID: "explain", now: unixNow())
        }
        switch admission {
        case .forward(let plan):
            print("forward \(plan.target)")
            for h in plan.headers { print("  \(h.name): \(h.value)") }
            return 0
        case .refuse(let d, _):
            print("refuse \(d.status) \(d.code.rawValue): \(d.description)")
            return 1
        case .hold(let h):
            print("hold for the approval of \(h.request.principal) (route \(h.request.route)), then forward \(h.plan.target)")
            return 1
        case .wait:
            print("refuse 503 temporarily_unavailable: the chain's DIDs could not be resolved")
            return 1
        case .answer(let a):
            print("answer \(a.status)")
            print(String(decoding: a.body, as: UTF8.self), terminator: "")
            return a.status < 400 ? 0 : 1
        }
    }
}

func readStandardInput() -> String {
    var bytes: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buf.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        bytes += buf[0 ..< n]
    }
    return String(decoding: bytes, as: UTF8.self)
}
