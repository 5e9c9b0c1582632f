import MandateCore
import MandateRegistry

/// `mandate audit verify|show`: the audit trail, checked and searched offline.
enum Audit {
    static func run(_ args: [String]) throws -> Int32 {
        guard let sub = args.first else { throw CLIError(message: "audit needs verify or show", status: 2) }
        let o = try Options(Array(args.dropFirst()), valued: ["--key", "--agent", "--principal", "--config"], flags: [])
        guard !o.positional.isEmpty else { throw CLIError(message: "audit \(sub) needs one or more files, oldest first", status: 2) }
        switch sub {
        case "verify": return try verify(o)
        case "show": return try show(o)
        default: throw CLIError(message: "audit takes verify or show, not \(sub)", status: 2)
        }
    }

    static func lines(_ path: String) throws -> [ArraySlice<UInt8>] {
        let bytes = try Files.read(path)
        return bytes.split(separator: 0x0A, omittingEmptySubsequences: true).map { Array($0)[...] }
    }

    /// Every file in order, as one chain; the first bad record is named as FILE:LINE.
    static func verify(_ o: Options) throws -> Int32 {
        var key: VerificationKey?
        if let k = o.one("--key") {
            // The audit key's public JWK (or the private one: its public half is used).
            guard case .success(let jwk) = StrictJSON.parseObject(try Files.read(k)) else {
                throw CLIError(message: "\(k): not a JWK (a JSON object)")
            }
            if jwk["d"] != nil { key = try Files.loadKey(k).verificationKey } else {
                switch JWK.publicKey(jwk) {
                case .success(let v): key = v
                case .failure(let e): throw CLIError(message: "\(k): \(e.description)")
                }
            }
        }
        var summary: AuditChain.Summary?
        for path in o.positional {
            switch AuditChain.verify(try lines(path), key: key, continuing: summary) {
            case .success(let s): summary = s
            case .failure(let f):
                print("\(path):\(f.index + 1): record \(f.seq.map(String.init) ?? "?"): \(f.reason)")
                return 1
            }
        }
        let s = summary ?? AuditChain.Summary()
        print("ok: \(counted(s.records, "record")), \(counted(s.checkpoints, "checkpoint")) "
              + (key == nil ? "(signatures not checked: give --key)" : "with good signatures") + ", head \(s.head)")
        return 0
    }

    /// The records of one agent or principal, as they are (JSON lines). Records name them by
    /// DID; with `--config`, a registered agent's or principal's name (or a configured
    /// principal's) is looked up first.
    static func show(_ o: Options) throws -> Int32 {
        var agent = o.one("--agent"), principal = o.one("--principal")
        if let a = agent, !a.hasPrefix("did:") {
            guard let path = o.one("--config") else {
                throw CLIError(message: "--agent \(a) is not a DID: give --config FILE to look up a registered agent by name", status: 2)
            }
            let config = try Serve.load(path)
            guard let store = try RegistryPlace.open(config, path), let found = try? store.agent(a) else {
                throw CLIError(message: "\(path): no agent \(a) in the registry")
            }
            agent = found.did
        }
        if let p = principal, !p.hasPrefix("did:"), let path = o.one("--config") {
            // A name, unless it is a partner's person (alice@partner.example), whom records name as is.
            let config = try Serve.load(path)
            if let c = config.principals.first(where: { $0.name == p }) {
                principal = c.did
            } else if let store = try RegistryPlace.open(config, path), let r = try? store.principal(p) {
                principal = r.did
            }
        }
        for path in o.positional {
            for line in try lines(path) {
                guard case .success(let r) = StrictJSON.parseObject(line), r["checkpoint"] == nil else { continue }
                if let agent, r["agent"]?.string != agent && !(r["chain"]?.array?.contains(.string(agent)) ?? false) { continue }
                if let principal, r["principal"]?.string != principal { continue }
                print(String(decoding: line, as: UTF8.self))
            }
        }
        return 0
    }
}
