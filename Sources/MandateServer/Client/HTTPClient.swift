import CCurl
import CMandateShim
import MandateHTTP

/// A blocking one-request client over libcurl easy, for `mandate request` and tests.
public enum HTTPClient {
    public struct Response: Sendable {
        public var status: Int
        public var headers: [HTTPHeader]
        public var body: [UInt8]
    }

    public struct Failure: Error, Sendable { public var message: String }

    final class Sink {
        var headers: [HTTPHeader] = []
        var body: [UInt8] = []
        var upload: [UInt8] = []
        var uploadOffset = 0
        var stream: ((ArraySlice<UInt8>) -> Void)?
        var onHead: ((Int, [HTTPHeader]) -> Void)?
        var status = 0
    }

    /// PEM files for https: the CA bundle to verify the server with, and a client certificate.
    public struct TLSFiles: Sendable {
        public var caFile: String?
        public var certificate: String?
        public var key: String?
        public init(caFile: String? = nil, certificate: String? = nil, key: String? = nil) {
            self.caFile = caFile; self.certificate = certificate; self.key = key
        }
    }

    /// `onBody`, when given, receives the body as it arrives (Server-Sent Events stay live).
    public static func perform(method: String, url: String, headers: [HTTPHeader], body: [UInt8]?,
                               timeout: Double = 60, tls: TLSFiles = TLSFiles(), onHead: ((Int, [HTTPHeader]) -> Void)? = nil,
                               onBody: ((ArraySlice<UInt8>) -> Void)? = nil) throws(Failure) -> Response {
        _ = globalInit
        guard let h = curl_easy_init() else { throw Failure(message: "curl_easy_init failed") }
        defer { curl_easy_cleanup(h) }
        let sink = Sink()
        sink.stream = onBody
        sink.onHead = onHead
        let ctx = Unmanaged.passUnretained(sink).toOpaque()
        var list: UnsafeMutablePointer<curl_slist>? = nil
        for hd in headers { list = curl_slist_append(list, "\(hd.name): \(hd.value)") }
        // Keep curl from adding fields the caller did not ask for.
        list = curl_slist_append(list, "Expect:")
        list = curl_slist_append(list, "Accept:")
        defer { curl_slist_free_all(list) }
        _ = url.withCString { mandate_curl_easy_setopt_ptr(h, CURLOPT_URL, $0) }
        _ = method.withCString { mandate_curl_easy_setopt_ptr(h, CURLOPT_CUSTOMREQUEST, $0) }
        if method == "HEAD" { _ = mandate_curl_easy_setopt_long(h, CURLOPT_NOBODY, 1) }
        _ = mandate_curl_easy_setopt_ptr(h, CURLOPT_HTTPHEADER, list)
        _ = mandate_curl_easy_setopt_long(h, CURLOPT_TIMEOUT_MS, Int(timeout * 1000))
        _ = mandate_curl_easy_setopt_long(h, CURLOPT_NOSIGNAL, 1)
        if let f = tls.caFile { _ = f.withCString { mandate_curl_easy_setopt_ptr(h, CURLOPT_CAINFO, $0) } }
        if let f = tls.certificate { _ = f.withCString { mandate_curl_easy_setopt_ptr(h, CURLOPT_SSLCERT, $0) } }
        if let f = tls.key { _ = f.withCString { mandate_curl_easy_setopt_ptr(h, CURLOPT_SSLKEY, $0) } }
        _ = mandate_curl_easy_setopt_ptr(h, CURLOPT_HEADERDATA, ctx)
        _ = mandate_curl_easy_setopt_write(h, CURLOPT_HEADERFUNCTION) { ptr, size, n, ud in
            let sink = Unmanaged<Sink>.fromOpaque(ud!).takeUnretainedValue()
            let line = String(decoding: UnsafeRawBufferPointer(start: ptr, count: size * n), as: UTF8.self)
            if line.hasPrefix("HTTP/") {
                sink.headers.removeAll()
                sink.status = Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
            }
            // The blank line ends a head; 1xx heads are interim (RFC 9110 §15.2).
            if line == "\r\n" || line == "\n", sink.status >= 200 { sink.onHead?(sink.status, sink.headers) }
            if let colon = line.firstIndex(of: ":") {
                let name = String(line[..<colon])
                var value = line[line.index(after: colon)...]
                while value.first == " " { value = value.dropFirst() }
                while let l = value.last, l.isNewline || l == " " { value = value.dropLast() }
                sink.headers.append(HTTPHeader(name, String(value)))
            }
            return size * n
        }
        _ = mandate_curl_easy_setopt_ptr(h, CURLOPT_WRITEDATA, ctx)
        _ = mandate_curl_easy_setopt_write(h, CURLOPT_WRITEFUNCTION) { ptr, size, n, ud in
            let sink = Unmanaged<Sink>.fromOpaque(ud!).takeUnretainedValue()
            let bytes = UnsafeRawBufferPointer(start: ptr, count: size * n)
            if let s = sink.stream { s(Array(bytes)[...]) } else { sink.body += bytes }
            return size * n
        }
        if let body {
            sink.upload = body
            _ = mandate_curl_easy_setopt_long(h, CURLOPT_UPLOAD, 1)
            _ = mandate_curl_easy_setopt_off(h, CURLOPT_INFILESIZE_LARGE, curl_off_t(body.count))
            _ = mandate_curl_easy_setopt_ptr(h, CURLOPT_READDATA, ctx)
            _ = mandate_curl_easy_setopt_write(h, CURLOPT_READFUNCTION) { ptr, size, n, ud in
                let sink = Unmanaged<Sink>.fromOpaque(ud!).takeUnretainedValue()
                let k = min(size * n, sink.upload.count - sink.uploadOffset)
                sink.upload.withUnsafeBytes { src in
                    UnsafeMutableRawPointer(ptr!).copyMemory(from: src.baseAddress! + sink.uploadOffset, byteCount: k)
                }
                sink.uploadOffset += k
                return k
            }
        }
        let rc = curl_easy_perform(h)
        guard rc == CURLE_OK else { throw Failure(message: String(cString: curl_easy_strerror(rc))) }
        var status = 0
        _ = mandate_curl_easy_getinfo_long(h, CURLINFO_RESPONSE_CODE, &status)
        return Response(status: status, headers: sink.headers, body: sink.body)
    }

    static let globalInit: Void = { _ = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()
}
