import MandateCrypto

/// RFC 8705 §3: a leaf bound to a client certificate by `cnf` `x5t#S256` is used over a mutual
/// TLS connection whose certificate has that SHA-256, and whose key is the agent's (its sub's).
public enum CertificateBinding {
    public static func check(_ chain: VerifiedChain, _ certificate: ClientCertificate?) -> Reason? {
        guard let x5t = chain.certificateThumbprint else {
            // RFC 9449 §7.2: a DPoP-bound token is not accepted as a Bearer token.
            return Reason("the token is DPoP-bound (cnf jkt); present it with Authorization: DPoP and a proof")
        }
        guard let certificate else { return Reason("the delegation is bound to a client certificate and none was presented") }
        guard constantTimeEqual(certificate.thumbprint.utf8, x5t.utf8) else {
            return Reason("the delegation is bound to another client certificate (cnf x5t#S256)")
        }
        if let keys = chain.certificateKeys {
            guard let key = certificate.keyThumbprint, keys.contains(key) else {
                return Reason("the client certificate's key is not the key of the agent (sub)")
            }
        }
        return nil
    }
}

extension ClientCertificate {
    /// From the handshake: the DER's SHA-256 and the public key, raw Ed25519 (32 bytes) or an
    /// uncompressed P-256 point (65 bytes); any other key binds nothing (keyThumbprint nil).
    public init(derSHA256: [UInt8], publicKey: [UInt8]) {
        var key: VerificationKey?
        switch publicKey.count {
        case 32: key = .ed25519(publicKey)
        case 65 where publicKey[0] == 4: key = P256PublicKey(x: publicKey[1 ..< 33], y: publicKey[33...]).map { .p256($0) }
        default: key = nil
        }
        self.init(thumbprint: Base64URL.encode(derSHA256), keyThumbprint: key?.thumbprint)
    }
}
