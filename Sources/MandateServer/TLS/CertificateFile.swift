import CMandateShim
import MandateCore

/// What a certificate can bind (RFC 8705 §3.1), from a PEM file: for `mandate delegate --bind-cert`.
public enum CertificateFile {
    /// The binding, and the did:key of the certificate's key (nil unless Ed25519 or P-256).
    public static func load(_ path: String) throws -> (certificate: ClientCertificate, did: String?) {
        var sha = [UInt8](repeating: 0, count: 32), key = [UInt8](repeating: 0, count: 65)
        var kind: Int32 = 0
        var err = [CChar](repeating: 0, count: 256)
        guard mandate_x509_file(path, &sha, &key, &kind, &err, err.count) == 1 else {
            throw ServerError("\(path): not a PEM certificate (\(cText(err)))")
        }
        let did = kind == 1 ? DID.key(ed25519: Array(key[0 ..< 32])) : kind == 2 ? DID.key(p256: key) : nil
        return (ClientCertificate(derSHA256: sha, publicKey: rawKey(kind, key)), did)
    }

    /// The key bytes `ClientCertificate(derSHA256:publicKey:)` takes, by the shim's key kind.
    static func rawKey(_ kind: Int32, _ key: [UInt8]) -> [UInt8] {
        kind == 1 ? Array(key[0 ..< 32]) : kind == 2 ? key : []
    }
}
