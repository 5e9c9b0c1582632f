import CCurl
import CMandateShim
import Dispatch
import MandateCore

/// Documents over HTTPS with libcurl, off the event loops (did:web, OAuth metadata and JWKS):
/// verified TLS (the system's CAs or `ca`), https only, no proxy from the environment, public
/// addresses only unless allowed, at most `maxSize` bytes and `timeout` seconds, redirects
/// followed only within the origin.
public final class CurlFetcher: DocumentFetcher, FormPoster {
    let settings: ProxyConfig.FetchSettings
    private let queue = DispatchQueue(label: "mandate.did-web", attributes: .concurrent)

    public init(settings: ProxyConfig.FetchSettings) {
        _ = HTTPClient.globalInit
        self.settings = settings
    }

    /// The resolvers `config` asks for; `running`'s are kept where their settings did not change
    /// (so a reload keeps their caches).
    public static func resolvers(for config: ProxyConfig, running: (ProxyConfig, Verifier.Resolvers)? = nil) -> Verifier.Resolvers {
        let clock: @Sendable () -> Double = { Double(unixMillisNow()) / 1000 }
        var r = Verifier.Resolvers()
        if let w = config.didWeb {
            r.didWeb = running.flatMap { $0.0.didWeb == w ? $0.1.didWeb : nil }
                ?? DIDWebResolver(fetcher: CurlFetcher(settings: w.fetch), settings: w.cache, clock: clock)
        }
        for i in config.oauthIssuers where i.introspection != nil {
            let kept = running.flatMap { old in old.0.oauthIssuers.contains(i) ? old.1.introspector : nil }
            r.introspector = kept ?? Introspector(settings: i, defaultAudience: config.effectiveAudience,
                                                  poster: CurlFetcher(settings: i.fetch), clock: clock)
        }
        for i in config.oauthIssuers {
            let kept = running.flatMap { old in old.0.oauthIssuers.contains(i) ? old.1.issuers.first { $0.issuer == i.issuer } : nil }
            // Its clock measures intervals only (refresh, cooldown): monotonic, so a step of the
            // wall clock neither stalls nor hastens them.
            r.issuers.append(kept ?? IssuerKeys(issuer: i.issuer, jwksURI: i.jwksURI, settings: i.keys,
                                                fetcher: CurlFetcher(settings: i.fetch), clock: { monotonicNow() }))
        }
        return r
    }

    public func fetch(_ url: String, done: @escaping @Sendable (Result<[UInt8], Reason>) -> Void) {
        queue.async { [settings] in done(Self.get(url, settings)) }
    }

    public func post(_ url: String, form: String, user: String, password: String,
                     done: @escaping @Sendable (Result<(status: Int, body: [UInt8]), Reason>) -> Void) {
        queue.async { [settings] in done(Self.post(url, form, user, password, settings)) }
    }

    /// One POST, no redirects (RFC 7662 endpoints do not redirect a client's credentials).
    static func post(_ url: String, _ form: String, _ user: String, _ password: String,
                     _ s: ProxyConfig.FetchSettings) -> Result<(status: Int, body: [UInt8]), Reason> {
        guard let h = curl_easy_init() else { return .failure(Reason("curl_easy_init failed")) }
        defer { curl_easy_cleanup(h) }
        let sink = Sink()
        sink.limit = s.maxSize
        var list: UnsafeMutablePointer<curl_slist>? = nil
        list = curl_slist_append(list, "Accept: application/json")
        list = curl_slist_append(list, "Content-Type: application/x-www-form-urlencoded")
        defer { curl_slist_free_all(list) }
        common(h, url, s, sink, list)
        _ = mandate_curl_easy_setopt_long(h, CURLOPT_TIMEOUT_MS, Int(s.timeout * 1000))
        _ = mandate_curl_easy_setopt_long(h, CURLOPT_CONNECTTIMEOUT_MS, Int(s.timeout * 1000))
        _ = mandate_curl_easy_setopt_long(h, CURLOPT_HTTPAUTH, 1)  // CURLAUTH_BASIC
        _ = user.withCString { mandate_curl_easy_setopt_ptr(h, CURLOPT_USERNAME, $0) }
        _ = password.withCString { mandate_curl_easy_setopt_ptr(h, CURLOPT_PASSWORD, $0) }
        let rc = form.withCString { f -> CURLcode in
            _ = mandate_curl_easy_setopt_ptr(h, CURLOPT_COPYPOSTFIELDS, f)
            return curl_easy_perform(h)
        }
        if sink.tooLarge || rc == CURLE_FILESIZE_EXCEEDED { return .failure(Reason("answer from \(url) is larger than \(s.maxSize) bytes")) }
        guard rc == CURLE_OK else { return .failure(Reason("\(url): \(String(cString: curl_easy_strerror(rc)))", temporary: transient(rc))) }
        var status = 0
        _ = mandate_curl_easy_getinfo_long(h, CURLINFO_RESPONSE_CODE, &status)
        return .success((status, sink.body))
    }

    /// The options every fetch shares: https only, no proxy, verified TLS, the size cap, the
    /// destination guard, the body sink.
    static func common(_ h: UnsafeMutableRawPointer, _ url: String, _ s: ProxyConfig.FetchSettings, _ sink: Sink,
                       _ list: UnsafeMutablePointer<curl_slist>?) {
        _ = url.withCString { mandate_curl_easy_setopt_ptr(h, CURLOPT_URL, $0) }
        _ = "https".withCString { mandate_curl_easy_setopt_ptr(h, CURLOPT_PROTOCOLS_STR, $0) }
        _ = "".withCString { mandate_curl_easy_setopt_ptr(h, CURLOPT_PROXY, $0) }
        _ = "mandate/0.1".withCString { mandate_curl_easy_setopt_ptr(h, CURLOPT_USERAGENT, $0) }
        if let ca = s.caFile { _ = ca.withCString { mandate_curl_easy_setopt_ptr(h, CURLOPT_CAINFO, $0) } }
        _ = mandate_curl_easy_setopt_ptr(h, CURLOPT_HTTPHEADER, list)
        _ = mandate_curl_easy_setopt_long(h, CURLOPT_NOSIGNAL, 1)
        _ = mandate_curl_easy_setopt_long(h, CURLOPT_FOLLOWLOCATION, 0)
        _ = mandate_curl_easy_setopt_off(h, CURLOPT_MAXFILESIZE_LARGE, curl_off_t(s.maxSize))
        sink.guardState.pointee = s.allowPrivateAddresses ? 1 : 0
        _ = mandate_curl_guard_destinations(h, sink.guardState)
        _ = mandate_curl_easy_setopt_ptr(h, CURLOPT_WRITEDATA, Unmanaged.passUnretained(sink).toOpaque())
        _ = mandate_curl_easy_setopt_write(h, CURLOPT_WRITEFUNCTION) { ptr, size, n, ud in
            let sink = Unmanaged<Sink>.fromOpaque(ud!).takeUnretainedValue()
            if sink.body.count + size * n > sink.limit { sink.tooLarge = true; return 0 }
            sink.body += UnsafeRawBufferPointer(start: ptr, count: size * n)
            return size * n
        }
    }

    final class Sink {
        var body: [UInt8] = []
        var limit = 0
        var tooLarge = false
        /// The destination guard's state (see mandate_curl_guard_destinations): stable memory,
        /// read by curl's callback during the transfer.
        let guardState = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        init() { guardState.initialize(to: 0) }
        deinit { guardState.deallocate() }
    }

    /// Worth retrying soon: the network or the server failed, rather than answered. (A name that
    /// does not resolve is taken as an answer: that DID names no server.)
    static func transient(_ rc: CURLcode) -> Bool {
        [CURLE_OPERATION_TIMEDOUT, CURLE_COULDNT_CONNECT, CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_GOT_NOTHING,
         CURLE_PARTIAL_FILE].contains(rc)
    }

    static func get(_ start: String, _ s: ProxyConfig.FetchSettings) -> Result<[UInt8], Reason> {
        var url = start
        let deadline = monotonicNow() + s.timeout
        for _ in 0 ..< 4 {
            guard let h = curl_easy_init() else { return .failure(Reason("curl_easy_init failed")) }
            defer { curl_easy_cleanup(h) }
            let sink = Sink()
            sink.limit = s.maxSize
            var list: UnsafeMutablePointer<curl_slist>? = nil
            list = curl_slist_append(list, "Accept: application/did+json, application/json")
            defer { curl_slist_free_all(list) }
            common(h, url, s, sink, list)
            let left = max(1, Int((deadline - monotonicNow()) * 1000))
            _ = mandate_curl_easy_setopt_long(h, CURLOPT_TIMEOUT_MS, left)
            _ = mandate_curl_easy_setopt_long(h, CURLOPT_CONNECTTIMEOUT_MS, left)
            let rc = curl_easy_perform(h)
            if sink.tooLarge || rc == CURLE_FILESIZE_EXCEEDED { return .failure(Reason("document at \(url) is larger than \(s.maxSize) bytes")) }
            guard rc == CURLE_OK else {
                if sink.guardState.pointee == -1 {
                    return .failure(Reason("fetching \(url): a private address (set allow_private_addresses on to fetch from one)"))
                }
                return .failure(Reason("fetching \(url): \(String(cString: curl_easy_strerror(rc)))", temporary: transient(rc)))
            }
            var status = 0
            _ = mandate_curl_easy_getinfo_long(h, CURLINFO_RESPONSE_CODE, &status)
            if status == 200 { return .success(sink.body) }
            guard (301...308).contains(status), status != 304 else {
                return .failure(Reason("fetching \(url): HTTP \(status)", temporary: status >= 500 || status == 429))
            }
            var location: UnsafeMutableRawPointer?
            _ = mandate_curl_easy_getinfo_ptr(h, CURLINFO_REDIRECT_URL, &location)
            guard let location else { return .failure(Reason("fetching \(url): HTTP \(status) without a Location")) }
            let next = String(cString: location.assumingMemoryBound(to: CChar.self))
            guard origin(next) == origin(url) else { return .failure(Reason("fetching \(url): redirected to another origin (\(next))")) }
            url = next
        }
        return .failure(Reason("fetching \(start): too many redirects"))
    }

    /// `https://host[:port]` of an absolute URL, lower-cased.
    static func origin(_ url: String) -> String? {
        guard url.lowercased().hasPrefix("https://") else { return nil }
        let rest = url.dropFirst(8)
        return "https://" + rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }.lowercased()
    }
}
