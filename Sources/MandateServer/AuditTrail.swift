import Glibc
import MandateCore
import Synchronization

/// The audit trail file (`audit { … }`): one hash-chained record per decision, from every event
/// loop in one sequence (a lock per record), a signed checkpoint every `checkpointEvery` records,
/// at rotation and at shutdown. A restart continues the chain from the file's last record;
/// rotation (`maxSize`) renames the file to `FILE.<last seq, 12 digits>` and the next file goes
/// on from it. Each record is one write(2) to the file, made before the response's last byte
/// is sent (so a killed process loses no record of an answer); the file is fsynced at every
/// checkpoint, at rotation and shutdown, and otherwise once a second when records were written
/// (a power failure can lose at most the last second).
public final class AuditTrail: Sendable {
    struct State {
        var fd: Int32
        var seq: Int64
        var head: String
        var size: Int
        var sinceCheckpoint = 0
        /// Records written since the last fsync.
        var unsynced = false
    }

    public let path: String
    let checkpointEvery: Int
    let maxSize: Int
    private let signer: @Sendable (String) -> String
    private let state: Mutex<State>

    /// `sign`: base64url signature of a checkpoint's hash with the audit key.
    public init(path: String, checkpointEvery: Int, maxSize: Int, sign: @escaping @Sendable (String) -> String) throws {
        self.path = path; self.checkpointEvery = checkpointEvery; self.maxSize = maxSize; signer = sign
        let (seq, head, size) = try Self.resume(path)
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw ServerError("audit file \(path): cannot open (\(String(cString: strerror(errno))))") }
        state = Mutex(State(fd: fd, seq: seq, head: head, size: size))
        pthread_detach(startThread { [self] in syncEverySecond() })
    }

    /// fsync off the loops: a duplicate of the descriptor, so appends never wait for the disk.
    private func syncEverySecond() {
        while true {
            sleep(1)
            let fd = state.withLock { s -> Int32? in
                if s.fd < 0 { return -1 }
                guard s.unsynced else { return nil }
                s.unsynced = false
                return dup(s.fd)
            }
            guard let fd else { continue }
            if fd < 0 { return }  // closed
            _ = fsync(fd)
            Glibc.close(fd)
        }
    }

    /// The last record's seq and hash, so the chain goes on; a file whose last line is not a
    /// record is refused (a truncated or foreign file would silently break the chain).
    static func resume(_ path: String) throws -> (Int64, String, Int) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return (0, AuditChain.genesis, 0) }
        defer { Glibc.close(fd) }
        let size = Int(lseek(fd, 0, SEEK_END))
        if size == 0 { return (0, AuditChain.genesis, 0) }
        let tail = min(size, 64 << 10)
        var buf = [UInt8](repeating: 0, count: tail)
        guard pread(fd, &buf, tail, off_t(size - tail)) == tail, buf.last == 0x0A else {
            throw ServerError("audit file \(path): does not end with a complete record; move it aside")
        }
        let lines = buf.dropLast().split(separator: 0x0A, omittingEmptySubsequences: false)
        guard let last = lines.last, case .success(let o) = StrictJSON.parseObject(last),
              let seq = o["seq"]?.integer, let hash = o["hash"]?.string else {
            throw ServerError("audit file \(path): its last line is not an audit record; move it aside")
        }
        return (seq, hash, size)
    }

    /// `body`: a JSON object without seq, ts and prev (AuditRecordText makes it).
    public func append(_ fields: String, unixMillis: Int64) {
        state.withLock { s in
            write(&s, fields, unixMillis: unixMillis, checkpoint: false)
            s.sinceCheckpoint += 1
            s.unsynced = true
            if s.sinceCheckpoint >= checkpointEvery { checkpoint(&s, unixMillis) }
            if s.size >= maxSize { rotate(&s, unixMillis) }
        }
    }

    /// A signed checkpoint now (shutdown).
    public func close(unixMillis: Int64) {
        state.withLock { s in
            if s.sinceCheckpoint > 0 { checkpoint(&s, unixMillis) }
            Glibc.close(s.fd)
            s.fd = -1
        }
    }

    private func checkpoint(_ s: inout State, _ unixMillis: Int64) {
        write(&s, "\"checkpoint\":{\"records\":\(s.sinceCheckpoint)}", unixMillis: unixMillis, checkpoint: true)
        s.sinceCheckpoint = 0
        _ = fsync(s.fd)
        s.unsynced = false
    }

    private func rotate(_ s: inout State, _ unixMillis: Int64) {
        if s.sinceCheckpoint > 0 { checkpoint(&s, unixMillis) }
        Glibc.close(s.fd)
        var digits = String(s.seq)
        digits = String(repeating: "0", count: max(0, 12 - digits.count)) + digits
        _ = rename(path, path + "." + digits)
        s.fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        s.size = 0
    }

    private func write(_ s: inout State, _ fields: String, unixMillis: Int64, checkpoint: Bool) {
        guard s.fd >= 0 else { return }
        s.seq += 1
        var body = "{\"seq\":\(s.seq),\"ts\":\""
        appendTimestamp(unixMillis, to: &body)
        body += "\"," + fields + "}"
        let sign: ((String) -> String)? = checkpoint ? { [signer] in signer($0) } : nil
        let (line, hash) = AuditChain.seal(body, prev: s.head, sign: sign)
        s.head = hash
        let bytes = Array((line + "\n").utf8)
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(s.fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }  // a failing disk must not stop the proxy; verify will show the gap
            off += n
        }
        s.size += bytes.count
    }
}

extension AccessRecord {
    /// The audit record's fields (docs: README "Audit trail").
    func auditFields() -> String {
        var s = "\"request_id\":"
        JSONText.appendString(requestID, to: &s)
        s += forwarded ? ",\"decision\":\"forward\",\"reason\":" : ",\"decision\":\"refuse\",\"reason\":"
        if let reason { JSONText.appendString(reason, to: &s) } else { s += "null" }
        s += ",\"status\":\(status),\"upstream_status\":" + (forwarded && status != 499 ? String(status) : "null")
        for (name, value) in [("principal", facts.principal), ("organization", facts.organization), ("issuer", facts.issuer),
                              ("agent", facts.agent), ("proof", facts.proof), ("route", facts.route)] {
            s += ",\"\(name)\":"
            if let value { JSONText.appendString(value, to: &s) } else { s += "null" }
        }
        s += ",\"chain\":"
        JSONText.appendArray(facts.chain, to: &s)
        s += ",\"jtis\":"
        JSONText.appendArray(facts.jtis, to: &s)
        s += ",\"method\":"
        JSONText.appendString(method, to: &s)
        s += ",\"path\":"
        JSONText.appendString(path, to: &s)
        s += ",\"peer\":"
        JSONText.appendString(peer, to: &s)
        let micros = Int((latencyMillis * 1000).rounded())
        s += ",\"approval\":"
        if let id = facts.approval {
            s += "{\"id\":"
            JSONText.appendString(id, to: &s)
            for (name, value) in [("approver", facts.approver), ("receipt_sha256", facts.receipt)] {
                s += ",\"\(name)\":"
                if let value { JSONText.appendString(value, to: &s) } else { s += "null" }
            }
            s += "}"
        } else {
            s += "null"
        }
        s += ",\"latency_us\":\(micros)"
        return s
    }
}
