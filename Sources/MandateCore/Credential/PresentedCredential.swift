import MandateHTTP

/// The credential as the agent presents it:
/// `Authorization: DPoP <leaf>`, `DPoP: <proof>`, `Agent-Delegation: <root>, …, <parent>`;
/// or, for a leaf bound to the client certificate (RFC 8705), `Authorization: Bearer <leaf>`
/// over mutual TLS and no proof.
public struct PresentedCredential: Sendable {
    public enum Scheme: Sendable { case dpop, bearer }
    public let scheme: Scheme
    public let leaf: ArraySlice<UInt8>
    /// Root first; empty when the leaf is itself the root.
    public let ancestors: [ArraySlice<UInt8>]
    /// The raw Agent-Delegation value, to tie a cached chain to exactly what was presented.
    public let ancestry: [UInt8]
    /// Empty for the Bearer scheme, and when an HTTP message signature is the proof.
    public let proof: ArraySlice<UInt8>
    /// `DPoP` scheme with an RFC 9421 signature (Signature-Input, Signature) instead of a DPoP proof.
    public let signed: Bool

    public struct Limits: Sendable {
        public var token = 8192
        public var chainBytes = 32768
        public init() {}
    }

    public static func extract(from head: HTTPRequestHead, limits: Limits = Limits()) -> Result<PresentedCredential, Denial> {
        // The HTTP parser already refused repeated Authorization, DPoP and Agent-Delegation.
        guard let auth = head.value("Authorization") else {
            return .failure(Denial(.missingCredential, "this resource needs Authorization: DPoP and a DPoP proof"))
        }
        let a = Array(auth.utf8)
        guard let space = a.firstIndex(of: UInt8(ascii: " ")) else {
            return .failure(Denial(a.elementsEqual("dpop".utf8, by: asciiCaseInsensitiveEqual) ? .invalidToken : .missingCredential,
                                   "Authorization must be 'DPoP <token>'"))
        }
        // RFC 9110 §11.1: the scheme is case-insensitive. Whether Bearer may be used is decided
        // once the leaf is known (RFC 9449 §7.2: no downgrade of a DPoP-bound token).
        let scheme: Scheme
        if a[..<space].elementsEqual("dpop".utf8, by: asciiCaseInsensitiveEqual) {
            scheme = .dpop
        } else if a[..<space].elementsEqual("bearer".utf8, by: asciiCaseInsensitiveEqual) {
            scheme = .bearer
        } else {
            return .failure(Denial(.missingCredential, "unsupported authorization scheme; use DPoP"))
        }
        var start = space
        while start < a.endIndex, a[start] == UInt8(ascii: " ") { start += 1 }
        let leaf = a[start...]
        guard !leaf.isEmpty else { return .failure(Denial(.invalidToken, "empty credential")) }
        guard leaf.count <= limits.token else { return .failure(Denial(.invalidToken, "delegation token exceeds the size limit")) }
        var proof: ArraySlice<UInt8> = []
        let signed = head.value("Signature-Input") != nil || head.value("Signature") != nil
        switch (scheme, head.value("DPoP")) {
        case (.dpop, nil):
            guard signed else { return .failure(Denial(.invalidDPoPProof, "missing DPoP proof header")) }
        case (.dpop, _?) where signed:
            return .failure(Denial(.invalidRequest, "both a DPoP proof and an HTTP message signature: send one"))
        case (.dpop, let text?):
            proof = Array(text.utf8)[...]
            guard proof.count <= limits.token else { return .failure(Denial(.invalidDPoPProof, "DPoP proof exceeds the size limit")) }
        case (.bearer, _?):
            return .failure(Denial(.invalidToken, "a DPoP proof was sent with the Bearer scheme; use Authorization: DPoP"))
        case (.bearer, nil): break
        }

        var ancestors: [ArraySlice<UInt8>] = []
        var ancestry: [UInt8] = []
        if let chain = head.value("Agent-Delegation") {
            ancestry = Array(chain.utf8)
            guard ancestry.count <= limits.chainBytes else {
                return .failure(Denial(.invalidToken, "Agent-Delegation exceeds the size limit"))
            }
            for part in ancestry.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
                var lo = part.startIndex, hi = part.endIndex
                while lo < hi, part[lo] == 0x20 || part[lo] == 0x09 { lo += 1 }
                while hi > lo, part[hi - 1] == 0x20 || part[hi - 1] == 0x09 { hi -= 1 }
                guard lo < hi else { return .failure(Denial(.invalidToken, "Agent-Delegation has an empty element")) }
                guard hi - lo <= limits.token else { return .failure(Denial(.invalidToken, "delegation token exceeds the size limit")) }
                ancestors.append(ancestry[lo..<hi])
            }
        }
        return .success(PresentedCredential(scheme: scheme, leaf: leaf, ancestors: ancestors, ancestry: ancestry, proof: proof,
                                            signed: signed && scheme == .dpop))
    }
}
