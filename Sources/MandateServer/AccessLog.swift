import CCurl
import Glibc
import MandateCore

/// One access-log line's facts.
public struct AccessRecord: Sendable, Equatable {
    public var unixMillis: Int64
    public var requestID: String
    public var method: String
    public var path: String
    public var status: Int
    public var forwarded: Bool
    public var reason: String?
    public var facts: AuditFacts
    public var latencyMillis: Double
    public var peer: String

    public init(unixMillis: Int64, requestID: String, method: String, path: String, status: Int, forwarded: Bool,
                reason: String?, facts: AuditFacts, latencyMillis: Double, peer: String) {
        self.unixMillis = unixMillis; self.requestID = requestID; self.method = method; self.path = path
        self.status = status; self.forwarded = forwarded; self.reason = reason; self.facts = facts
        self.latencyMillis = latencyMillis; self.peer = peer
    }

    /// One JSON object and a newline.
    public func appendLine(to s: inout String) {
        s += "{\"ts\":\""
        appendTimestamp(unixMillis, to: &s)
        s += "\",\"request_id\":"
        JSONText.appendString(requestID, to: &s)
        s += ",\"method\":"
        JSONText.appendString(method, to: &s)
        s += ",\"path\":"
        JSONText.appendString(path, to: &s)
        s += ",\"status\":"
        s += String(status)
        s += forwarded ? ",\"decision\":\"forward\",\"reason\":" : ",\"decision\":\"refuse\",\"reason\":"
        Self.appendOptional(reason, to: &s)
        s += ",\"principal\":"
        Self.appendOptional(facts.principal, to: &s)
        Self.appendIfPresent("organization", facts.organization, to: &s)
        Self.appendIfPresent("issuer", facts.issuer, to: &s)
        s += ",\"agent\":"
        Self.appendOptional(facts.agent, to: &s)
        Self.appendIfPresent("proof", facts.proof, to: &s)
        Self.appendIfPresent("approval", facts.approval, to: &s)
        s += ",\"chain\":"
        JSONText.appendArray(facts.chain, to: &s)
        s += ",\"route\":"
        Self.appendOptional(facts.route, to: &s)
        s += ",\"latency_ms\":"
        let micros = Int((latencyMillis * 1000).rounded())
        s += String(micros / 1000) + "." + CivilTime.pad(Int64(micros % 1000), 3)
        s += ",\"peer\":"
        JSONText.appendString(peer, to: &s)
        s += "}\n"
    }

    /// `,"name":"value"`, or nothing when there is no value.
    private static func appendIfPresent(_ name: String, _ v: String?, to s: inout String) {
        guard let v else { return }
        s += ",\""
        s += name
        s += "\":"
        JSONText.appendString(v, to: &s)
    }

    private static func appendOptional(_ v: String?, to s: inout String) {
        if let v { JSONText.appendString(v, to: &s) } else { s += "null" }
    }
}


/// Where access-log lines go. Each loop batches its lines and writes them once per loop turn.
final class AccessLogSink: @unchecked Sendable {  // shared fd; writes are single write(2) calls
    let fd: Int32
    let ownsFD: Bool

    init(destination: String) throws {
        switch destination {
        case "off": fd = -1; ownsFD = false
        case "stdout": fd = 1; ownsFD = false
        default:
            let f = open(destination, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
            guard f >= 0 else { throw ServerError("access_log: cannot open '\(destination)': errno \(errno)") }
            fd = f; ownsFD = true
        }
    }

    deinit { if ownsFD { close(fd) } }

    func write(_ bytes: inout [UInt8]) {
        guard fd >= 0 else { bytes.removeAll(keepingCapacity: true); return }
        bytes.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + off, raw.count - off)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }  // a failing log must not stop the proxy
                off += n
            }
        }
        bytes.removeAll(keepingCapacity: true)
    }
}

/// A startup failure, naming the place.
public struct ServerError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
