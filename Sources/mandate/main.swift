import MandateCore
#if canImport(Glibc)
import Glibc
#endif

let version = "0.1.0"

let usage = """
usage: mandate <command> [options]       (mandate --version)

  serve    --config FILE [--check]          run the proxy (or only validate FILE)
  demo     [--dir DIR] [--port P] [--upstream-port U] [--approval-port A]
                                            demo upstream + proxy + approval service with demo identities
                                            (ports default to 8080, 9000 and 8082)
  upstream [--listen HOST:PORT]             run the demo upstream alone
  keygen   --alg EdDSA|ES256 --out FILE [--force]
                                            new key (mode 0600); prints its DID and thumbprint
  delegate --key FILE (--to DID [--to-jkt JKT] | --bind-cert PEM) --scope "..." --ttl DURATION
           [--parent TOKEN|@FILE] [--aud AUD] [--max-depth N] [--issuer DID --kid DID#FRAG] [--principal ID]
                                            sign a delegation (--bind-cert: to that client certificate); prints the token
  explain  --config FILE [-X METHOD] [-H ...]... [--headers FILE|-] [--cert PEM] PATH
                                            verify a request offline; print the decision
  request  [-X METHOD] [-H 'Name: value']... [-d DATA|@FILE] [-i] [--print-headers]
           [--cacert PEM] (--key FILE | --cert PEM --cert-key PEM) --chain FILE URL
                                            send a request with a fresh DPoP proof (exit 22 on 4xx/5xx);
                                            a certificate-bound chain goes as Bearer over --cert instead
  approve  ID --key FILE (--url APPROVAL_URL | --config FILE) [--cacert PEM]
                                            show a pending approval, sign "approve" with the principal's key, send it
  deny     ID --key FILE (--url APPROVAL_URL | --config FILE) [--cacert PEM]
                                            the same, signing "deny"
  principal add --config FILE --name N (--key FILE | --did DID) [--webhook URL] | list --config FILE [--json]
                                            enrol a principal in the registry (state_dir); a missing --key FILE is generated
  agent    register --config FILE --owner P --name N [--scope S] [--ttl 24h] [--out DIR] [--owner-key FILE] [--alg A]
           | list [--json] | show NAME|DID [--json] | suspend NAME|DID | resume NAME|DID   (each with --config FILE)
                                            register: a new agent key and DID in DIR (default ./N), its root delegation
                                            signed by the owner's key; list: the inventory with last seen, requests, denials
  revoke   agent NAME|DID | delegation JTI | principal NAME|DID --config FILE
                                            refused from the very next request; a delegation's descendants with it
  approvals login --key FILE (--url APPROVAL_URL | --config FILE) [--principal DID] [--ttl DURATION]
           | list --key FILE (--url APPROVAL_URL | --config FILE) [--principal DID] [--json] [--cacert PEM]
                                            login: print a one-time link that signs the principal in to the approval
                                            page (at most 10 min); list: the principal's pending approvals
  audit    verify [--key FILE] FILE... | show [--agent DID|NAME] [--principal P] [--config FILE] FILE...
                                            check the audit trail (files oldest first: edits, deletions, insertions,
                                            reordering, checkpoint signatures; names the first bad record), or list
                                            one agent's or principal's records
  loadgen  URL [-c CONNS] [-d DURATION] [-R RATE] [-t THREADS] [--warmup D] [--json FILE]
           [--no-auth | --key FILE --chain FILE | --principal-key FILE [--identities N] [--alg A] [--scope S]]
           [--reuse-proof] [--write-identities DIR] [--minters N] [--origin ORIGIN] [-X METHOD] [-H ...]... [--body DATA|@FILE]
                                            load test: closed loop (-c), or open loop at RATE requests/s
"""

/// One command's lines of `usage` (its first line starts with two spaces and its name).
func commandUsage(_ command: String) -> String? {
    let lines = usage.split(separator: "\n", omittingEmptySubsequences: false)
    guard let start = lines.firstIndex(where: { $0.hasPrefix("  \(command) ") }) else { return nil }
    var end = start + 1
    while end < lines.count && lines[end].hasPrefix("   ") { end += 1 }  // continuation lines
    return "usage: mandate " + lines[start ..< end].map { $0.dropFirst(2) }.joined(separator: "\n  ")
}

/// A CLI failure: printed as `mandate: message`, exit status 1 (2 for usage).
struct CLIError: Error {
    var message: String
    var status: Int32 = 1
}

func fail(_ message: String, status: Int32 = 1) -> Never {
    var err = StandardError()
    print("mandate: \(message)", to: &err)
    exit(status)
}

struct StandardError: TextOutputStream {
    mutating func write(_ s: String) { writeAll(2, Array(s.utf8)) }
}

var args = Array(CommandLine.arguments.dropFirst())
guard let command = args.first else {
    print(usage)
    exit(2)
}
args.removeFirst()
if command == "--version" || command == "version" {
    print("mandate \(version)")
    exit(0)
}
if args.contains("--help") || args.contains("-h") {
    print(commandUsage(command) ?? usage)
    exit(0)
}
do {
    switch command {
    case "serve": try Serve.run(args)
    case "demo": try Demo.run(args)
    case "upstream": try UpstreamCommand.run(args)
    case "keygen": try Keygen.run(args)
    case "delegate": try Delegate.run(args)
    case "request": exit(try Request.run(args))
    case "explain": exit(try Explain.run(args))
    case "audit": exit(try Audit.run(args))
    case "approve": try Approve.run(args, verdict: .approve)
    case "deny": try Approve.run(args, verdict: .deny)
    case "principal": try PrincipalCommand.run(args)
    case "agent": try AgentCommand.run(args)
    case "revoke": try RevokeCommand.run(args)
    case "approvals": try Approvals.run(args)
    case "loadgen": try Loadgen.run(args)
    case "help", "--help", "-h": print(usage)
    default: fail("unknown command '\(command)'\n\(usage)", status: 2)
    }
} catch let e as CLIError {
    fail(e.message, status: e.status)
} catch {
    fail("\(error)")
}

/// Unbuffered write to a file descriptor (stdout is 1, stderr 2).
func writeAll(_ fd: Int32, _ bytes: some Collection<UInt8>) {
    let a = Array(bytes)
    var off = 0
    while off < a.count {
        let n = a.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, a.count - off) }
        if n <= 0 { return }
        off += n
    }
}
