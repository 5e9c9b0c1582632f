import Testing
@testable import MandateCore
import MandateCrypto

/// The audit trail finds any edit, deletion, insertion or reordering, and names the first bad record.
@Suite struct AuditChainTests {
    let key = SigningKey.generate(.edDSA)

    /// `n` records, a checkpoint every `every`.
    func trail(_ n: Int, every: Int = 3, from: (seq: Int, head: String) = (0, AuditChain.genesis)) -> [String] {
        var head = from.head, out: [String] = []
        for i in 1 ... n {
            let seq = from.seq + i
            let checkpoint = i % every == 0
            let body = "{\"seq\":\(seq),\"ts\":\"t\"," + (checkpoint ? "\"checkpoint\":{\"records\":\(every - 1)}" : "\"request_id\":\"r\(seq)\",\"agent\":\"a\"") + "}"
            let (line, hash) = AuditChain.seal(body, prev: head, sign: checkpoint ? { Base64URL.encode(key.sign(Array($0.utf8))) } : nil)
            out.append(line); head = hash
        }
        return out
    }

    func verify(_ lines: [String], key: VerificationKey? = nil) -> Result<AuditChain.Summary, AuditChain.Failure> {
        AuditChain.verify(lines.map { Array($0.utf8)[...] }, key: key ?? self.key.verificationKey)
    }

    func failure(_ lines: [String]) -> AuditChain.Failure? { if case .failure(let f) = verify(lines) { f } else { nil } }

    @Test func anIntactTrailVerifies() throws {
        let s = try verify(trail(9)).get()
        #expect(s.records == 9 && s.checkpoints == 3 && s.lastSeq == 9)
    }

    @Test func anEditIsFoundAtTheEditedRecord() {
        var t = trail(9)
        t[4] = t[4].replacingFirst("\"agent\":\"a\"", with: "\"agent\":\"b\"")
        #expect(failure(t) == .init(index: 4, seq: 5, reason: "its content does not match its hash (edited)"))
    }

    @Test func deletionInsertionAndReorderingAreFound() {
        var deleted = trail(9); deleted.remove(at: 4)
        #expect(failure(deleted)?.index == 4)
        #expect(failure(deleted)?.reason.contains("missing or out of order") == true)
        var swapped = trail(9); swapped.swapAt(3, 4)
        #expect(failure(swapped)?.index == 3)
        // An inserted record with the right seq and a hash of its own still breaks the chain.
        var inserted = trail(9)
        let (forged, _) = AuditChain.seal("{\"seq\":5,\"ts\":\"t\",\"request_id\":\"x\"}", prev: AuditChain.genesis)
        inserted[4] = forged
        #expect(failure(inserted)?.reason.contains("prev is not the hash of the record before it") == true)
        // A trail cut at its start.
        #expect(failure(Array(trail(9).dropFirst(2)))?.reason.contains("does not start the chain") == true)
    }

    /// Rewriting every hash after an edit defeats the chain but not the checkpoint signatures.
    @Test func aRewrittenTailFailsAtTheNextCheckpoint() {
        let t = trail(9)
        var head = AuditChain.genesis, rewritten: [String] = []
        for (i, line) in t.enumerated() {
            var body = String(line[..<line.range(of: ",\"prev\":")!.lowerBound]) + "}"
            if i == 3 { body = body.replacingFirst("\"agent\":\"a\"", with: "\"agent\":\"mallory\"") }
            let checkpoint = line.contains("\"checkpoint\"")
            let forger = SigningKey.generate(.edDSA)
            let (l, h) = AuditChain.seal(body, prev: head, sign: checkpoint ? { Base64URL.encode(forger.sign(Array($0.utf8))) } : nil)
            rewritten.append(l); head = h
        }
        let f = failure(rewritten)
        #expect(f?.index == 2 && f?.reason.contains("signature does not verify") == true, "\(String(describing: f))")
    }

    @Test func filesContinueTheChain() throws {
        let first = trail(6)
        let s = try verify(first).get()
        let second = trail(4, from: (6, s.head))
        let both = try AuditChain.verify(second.map { Array($0.utf8)[...] }, key: key.verificationKey, continuing: s).get()
        #expect(both.records == 10 && both.lastSeq == 10)
        // The second file alone does not start a chain.
        #expect(failure(second)?.reason.contains("does not start the chain") == true)
    }
}

extension String {
    func replacingFirst(_ a: String, with b: String) -> String {
        guard let r = range(of: a) else { return self }
        var s = self
        s.replaceSubrange(r, with: b)
        return s
    }
}
