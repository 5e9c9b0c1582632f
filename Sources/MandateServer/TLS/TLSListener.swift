import CMandateShim
import MandateCore
import Synchronization

/// One TLS listener's OpenSSL context. A reload (SIGHUP) swaps in a new one; connections already
/// open keep the context they started with (OpenSSL counts its references).
final class TLSListener: Sendable {
    /// An SSL_CTX: safe to share between threads for SSL_new (OpenSSL locks it).
    private struct Context: @unchecked Sendable {
        let ctx: OpaquePointer
        let settings: ProxyConfig.TLS
    }
    private let current: Mutex<Context>

    init(_ settings: ProxyConfig.TLS) throws {
        current = Mutex(Context(ctx: try Self.load(settings), settings: settings))
    }

    deinit { current.withLock { mandate_tls_ctx_free($0.ctx) } }

    var settings: ProxyConfig.TLS { current.withLock { $0.settings } }

    /// Builds a context from the files, or says which file is wrong and why.
    static func load(_ s: ProxyConfig.TLS) throws -> OpaquePointer {
        // OpenSSL would say "unknown error" for a file it cannot open.
        for (what, path) in [("certificate", s.certificate), ("key", s.key), ("client_ca", s.clientCA)] {
            if let path, let why = unreadable(path) { throw ServerError("\(s.origin): tls: \(what) \(path): \(why)") }
        }
        var err = [CChar](repeating: 0, count: 512)
        let verify: Int32 = switch s.verifyClient {
        case .off: Int32(MANDATE_VERIFY_OFF)
        case .optional: Int32(MANDATE_VERIFY_OPTIONAL)
        case .required: Int32(MANDATE_VERIFY_REQUIRED)
        }
        guard let ctx = mandate_tls_ctx_new(s.certificate, s.key, s.clientCA, verify, &err, err.count) else {
            throw ServerError("\(s.origin): tls: \(cText(err))")
        }
        return ctx
    }

    /// New certificate, key and CA bundle from `next`; the old context stays if they do not load.
    func reload(_ next: ProxyConfig.TLS) throws {
        let fresh = Context(ctx: try Self.load(next), settings: next)
        let old = current.withLock { c in
            defer { c = fresh }
            return c
        }
        mandate_tls_ctx_free(old.ctx)
    }

    /// A server-side session on an accepted socket (nil when OpenSSL cannot make one).
    func session(fd: Int32) -> (OpaquePointer, ProxyConfig.TLS.ClientVerification)? {
        struct Made: @unchecked Sendable { let ssl: OpaquePointer; let mode: ProxyConfig.TLS.ClientVerification }
        // Under the lock: a reload must not free the context between the read and SSL_new.
        let made: Made? = current.withLock { c in mandate_tls_new(c.ctx, fd).map { Made(ssl: $0, mode: c.settings.verifyClient) } }
        return made.map { ($0.ssl, $0.mode) }
    }
}
