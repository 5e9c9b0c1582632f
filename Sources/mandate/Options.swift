#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import MandateCore

/// `--name value` options; repeatable ones collect in order.
struct Options {
    var values: [String: [String]] = [:]
    var flags: Set<String> = []
    var positional: [String] = []

    init(_ args: [String], valued: Set<String>, flags allowed: Set<String> = []) throws {
        var i = 0
        while i < args.count {
            let a = args[i]
            if valued.contains(a) {
                guard i + 1 < args.count else { throw CLIError(message: "\(a) needs a value", status: 2) }
                values[a, default: []].append(args[i + 1])
                i += 2
            } else if allowed.contains(a) {
                flags.insert(a)
                i += 1
            } else if a.hasPrefix("-") && a.count > 1 {
                throw CLIError(message: "unknown option \(a)", status: 2)
            } else {
                positional.append(a)
                i += 1
            }
        }
    }

    func one(_ name: String) -> String? { values[name]?.last }

    func required(_ name: String) throws -> String {
        guard let v = one(name) else { throw CLIError(message: "\(name) is required", status: 2) }
        return v
    }
}

enum Files {
    static func read(_ path: String) throws -> [UInt8] {
        guard let d = FileManager.default.contents(atPath: path) else {
            throw CLIError(message: "\(path): cannot read file (\(unreadable(path) ?? "cannot read"))")
        }
        return Array(d)
    }

    /// Why `path` cannot be read, or nil when it can.
    static func unreadable(_ path: String) -> String? {
        access(path, R_OK) == 0 ? nil : String(cString: strerror(errno))
    }

    static func readText(_ path: String) throws -> String {
        guard let s = String(validating: try read(path), as: UTF8.self) else {
            throw CLIError(message: "\(path): not UTF-8 text")
        }
        return s
    }

    /// Writes with mode 0600 (keys are secrets).
    static func writePrivate(_ path: String, _ bytes: [UInt8]) throws {
        let ok = FileManager.default.createFile(atPath: path, contents: Data(bytes),
                                                attributes: [.posixPermissions: 0o600])
        guard ok else { throw CLIError(message: "\(path): cannot write file") }
        try? FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
    }

    static func write(_ path: String, _ text: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else {
            throw CLIError(message: "\(path): cannot write file")
        }
    }

    static func loadKey(_ path: String) throws -> SigningKey {
        let bytes = try read(path)
        switch StrictJSON.parseObject(bytes) {
        case .failure: throw CLIError(message: "\(path): not a JWK (a JSON object, as mandate keygen writes)")
        case .success(let jwk):
            do { return try SigningKey(jwk: jwk) } catch { throw CLIError(message: "\(path): \(error.text)") }
        }
    }
}

/// `30s`, `15m`, `2h`, `1d`, or seconds.
func parseDuration(_ s: String) throws -> Int64 {
    let units: [(String, Int64)] = [("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
    for (u, f) in units where s.hasSuffix(u) {
        if let v = Int64(s.dropLast()), v > 0 { return v * f }
    }
    if let v = Int64(s), v > 0 { return v }
    throw CLIError(message: "'\(s)' is not a duration (like 30s, 15m, 2h, 1d)", status: 2)
}

func unixNow() -> Int64 { Int64(Date().timeIntervalSince1970) }

/// "1 route", "4 routes".
func counted(_ n: Int, _ noun: String) -> String { "\(n) \(noun)\(n == 1 ? "" : "s")" }
