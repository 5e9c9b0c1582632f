/// Serialises response heads and chunked bodies into a reused byte buffer (RFC 9112 §4, §7.1).
public enum HTTPResponseWriter {
    /// `HTTP/1.1 <status> <reason>` CRLF, then the fields, then the empty line.
    public static func appendHead(status: Int, headers: [HTTPHeader], to out: inout [UInt8]) {
        appendStatusLine(status, to: &out)
        for h in headers { appendField(h.name, h.value, to: &out) }
        out.append(0x0D); out.append(0x0A)
    }

    public static func appendStatusLine(_ status: Int, to out: inout [UInt8]) {
        out.append(contentsOf: "HTTP/1.1 ".utf8)
        appendDecimal(status, to: &out)
        out.append(0x20)
        out.append(contentsOf: reasonPhrase(status).utf8)
        out.append(0x0D); out.append(0x0A)
    }

    @inline(__always)
    public static func appendField(_ name: String, _ value: String, to out: inout [UInt8]) {
        out.append(contentsOf: name.utf8)
        out.append(0x3A); out.append(0x20)
        out.append(contentsOf: value.utf8)
        out.append(0x0D); out.append(0x0A)
    }

    public static func appendField(_ name: String, _ value: Int, to out: inout [UInt8]) {
        out.append(contentsOf: name.utf8)
        out.append(0x3A); out.append(0x20)
        appendDecimal(value, to: &out)
        out.append(0x0D); out.append(0x0A)
    }

    /// One chunk: hex size CRLF data CRLF. Empty data writes nothing (a zero chunk would end the body).
    public static func appendChunk(_ data: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        guard !data.isEmpty else { return }
        appendHex(data.count, to: &out)
        out.append(0x0D); out.append(0x0A)
        out.append(contentsOf: data)
        out.append(0x0D); out.append(0x0A)
    }

    /// The last chunk and an empty trailer section.
    public static func appendLastChunk(to out: inout [UInt8]) {
        out.append(contentsOf: [0x30, 0x0D, 0x0A, 0x0D, 0x0A])
    }

    public static func appendDecimal(_ value: Int, to out: inout [UInt8]) {
        if value < 0 { out.append(0x2D); appendDecimal(-value, to: &out); return }
        if value >= 10 { appendDecimal(value / 10, to: &out) }
        out.append(UInt8(value % 10) + 0x30)
    }

    public static func appendHex(_ value: Int, to out: inout [UInt8]) {
        if value >= 16 { appendHex(value >> 4, to: &out) }
        let d = UInt8(value & 15)
        out.append(d < 10 ? d + 0x30 : d - 10 + 0x61)
    }

    public static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 100: "Continue"
        case 101: "Switching Protocols"
        case 200: "OK"
        case 201: "Created"
        case 202: "Accepted"
        case 204: "No Content"
        case 206: "Partial Content"
        case 301: "Moved Permanently"
        case 302: "Found"
        case 303: "See Other"
        case 304: "Not Modified"
        case 307: "Temporary Redirect"
        case 308: "Permanent Redirect"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 413: "Content Too Large"
        case 414: "URI Too Long"
        case 415: "Unsupported Media Type"
        case 422: "Unprocessable Content"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        case 505: "HTTP Version Not Supported"
        default: status < 200 ? "Informational" : status < 300 ? "Success" : status < 400 ? "Redirection"
            : status < 500 ? "Client Error" : "Server Error"
        }
    }
}
