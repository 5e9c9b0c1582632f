import MandateCrypto

/// The audit trail's format: one JSON object per line, hash-chained. A record's body ends with
/// `"prev":<hash of the record before>`; its hash is base64url(SHA-256(body)), written after the
/// body as `"hash"`, and on a checkpoint record a signature over that hash as `"sig"` (the
/// proxy's audit key, checked with a key the verifier is given, never one from the file).
public enum AuditChain {
    /// `prev` of the very first record.
    public static let genesis = Base64URL.encode([UInt8](repeating: 0, count: 32))

    /// `body` is a JSON object without `prev`; returns the line (no newline) and its hash.
    public static func seal(_ body: String, prev: String, sign: ((String) -> String)? = nil) -> (line: String, hash: String) {
        var b = body
        b.removeLast()  // "}"
        b += (b.hasSuffix("{") ? "" : ",") + "\"prev\":\"" + prev + "\"}"
        let hash = Base64URL.encode(SHA256.hash(Array(b.utf8)))
        var line = String(b.dropLast()) + ",\"hash\":\"" + hash + "\""
        if let sign { line += ",\"sig\":\"" + sign(hash) + "\"" }
        return (line + "}", hash)
    }

    public struct Failure: Error, Equatable, Sendable {
        /// Index into the lines given (0-based) and the record's seq when it could be read.
        public var index: Int
        public var seq: Int64?
        public var reason: String
    }

    public struct Summary: Sendable, Equatable {
        public var records = 0
        public var checkpoints = 0
        public var head = AuditChain.genesis
        public var lastSeq: Int64 = 0
        public init() {}
    }

    /// Checks lines in order (files concatenated, oldest first): each one's own hash (an edit),
    /// its `prev` (a deletion, insertion or reordering), consecutive `seq`, and each checkpoint's
    /// signature (a rewritten tail). `key` is the audit key; without it signatures are not checked.
    public static func verify(_ lines: [ArraySlice<UInt8>], key: VerificationKey?, continuing from: Summary? = nil)
        -> Result<Summary, Failure> {
        var s = from ?? Summary()
        var expectedSeq: Int64? = from.map { $0.lastSeq + 1 }
        for (i, line) in lines.enumerated() {
            guard case .success(let o) = StrictJSON.parseObject(line) else {
                return .failure(Failure(index: i, seq: nil, reason: "not a JSON object"))
            }
            let seq = o["seq"]?.integer
            func fail(_ why: String) -> Result<Summary, Failure> { .failure(Failure(index: i, seq: seq, reason: why)) }
            guard let seq, seq > 0 else { return fail("no seq") }
            if let e = expectedSeq, seq != e { return fail("seq \(seq) where \(e) was expected (a record missing or out of order)") }
            guard let hash = o["hash"]?.string, let prev = o["prev"]?.string else { return fail("no hash or prev") }
            // The body is the line up to its hash member, closed.
            let marker = Array(",\"hash\":\"".utf8)
            guard let cut = lastIndex(of: marker, in: line) else { return fail("no hash member") }
            let body = Array(line[line.startIndex ..< cut]) + [UInt8(ascii: "}")]
            guard constantTimeEqual(Array(Base64URL.encode(SHA256.hash(body)).utf8), Array(hash.utf8)) else {
                return fail("its content does not match its hash (edited)")
            }
            guard prev == s.head else {
                return fail(s.records == 0 && from == nil ? "the first record does not start the chain (records before it are missing)"
                            : "prev is not the hash of the record before it (a record deleted, inserted or reordered)")
            }
            if o["checkpoint"] != nil {
                guard let sig = o["sig"]?.string, let bytes = Base64URL.decode(sig.utf8) else { return fail("checkpoint without sig") }
                if let key, !key.verify(signature: bytes, input: Array(hash.utf8)) {
                    return fail("the checkpoint's signature does not verify with the key given (a wrong key, or the chain before it was rewritten)")
                }
                s.checkpoints += 1
            }
            s.records += 1
            s.head = hash
            s.lastSeq = seq
            expectedSeq = seq + 1
        }
        return .success(s)
    }

    static func lastIndex(of needle: [UInt8], in hay: ArraySlice<UInt8>) -> Int? {
        guard hay.count >= needle.count else { return nil }
        var i = hay.endIndex - needle.count
        while i >= hay.startIndex {
            if hay[i ..< i + needle.count].elementsEqual(needle) { return i }
            i -= 1
        }
        return nil
    }
}
