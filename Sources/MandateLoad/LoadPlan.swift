import Glibc

/// What to run: target, mode, size and length. Immutable for the run.
public struct LoadPlan: Sendable {
    public enum Mode: Sendable, Equatable {
        /// Each connection sends its next request when the previous response is complete.
        case closed
        /// Requests are due at a fixed rate, whether or not the target keeps up; latency runs from
        /// the time a request was due (no coordinated omission).
        case open(rate: Double)
    }

    public var host: String
    public var port: Int
    public var mode: Mode
    public var connections: Int
    public var threads: Int
    public var duration: Double
    public var warmup: Double
    /// A response not complete this long after its request was sent is a timeout.
    public var timeout: Double
    public var template: RequestTemplate

    public init(host: String, port: Int, mode: Mode, connections: Int, threads: Int, duration: Double, warmup: Double,
                timeout: Double, template: RequestTemplate) {
        self.host = host; self.port = port; self.mode = mode; self.connections = connections; self.threads = threads
        self.duration = duration; self.warmup = warmup; self.timeout = timeout; self.template = template
    }
}

/// Why a request or connection failed, other than by an HTTP status.
public enum ConnectionFailure: Int, CaseIterable, Sendable {
    case connect, reset, closedMidResponse, invalidResponse, timeout

    public var name: String {
        switch self {
        case .connect: "connect"
        case .reset: "reset"
        case .closedMidResponse: "closed_mid_response"
        case .invalidResponse: "invalid_response"
        case .timeout: "timeout"
        }
    }
}

/// One I/O thread's counts; merged at the end.
public struct LoadTally: Sendable {
    public var histogram = LatencyHistogram()
    /// Responses by status code, 0..<600.
    public var statuses = [UInt64](repeating: 0, count: 600)
    public var failures = [UInt64](repeating: 0, count: ConnectionFailure.allCases.count)
    /// Connections opened after the first ones (the target closed, or a failure).
    public var reconnects: UInt64 = 0
    /// Seconds some connection was ready to send but no signed request was queued.
    public var mintStarvedSeconds = 0.0
    /// Open loop: requests that were due but not yet sent when the run ended.
    public var unsentAtEnd: UInt64 = 0
    public var sent: UInt64 = 0
    /// Open loop: requests that were due during the measured window.
    public var due: UInt64 = 0

    public init() {}

    public mutating func merge(_ o: LoadTally) {
        histogram.merge(o.histogram)
        for i in statuses.indices { statuses[i] += o.statuses[i] }
        for i in failures.indices { failures[i] += o.failures[i] }
        reconnects += o.reconnects; unsentAtEnd += o.unsentAtEnd; sent += o.sent; due += o.due
        mintStarvedSeconds = max(mintStarvedSeconds, o.mintStarvedSeconds)
    }
}

/// Resolves `host:port` once (blocking; before the run).
func resolve(host: String, port: Int) -> sockaddr_storage? {
    var hints = addrinfo()
    hints.ai_socktype = Socket.stream
    var res: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(host, String(port), &hints, &res) == 0, let first = res else { return nil }
    defer { freeaddrinfo(res) }
    var out = sockaddr_storage()
    withUnsafeMutableBytes(of: &out) { dst in
        dst.copyMemory(from: UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(first.pointee.ai_addrlen)))
    }
    return out
}

/// Linux socket constants (which clang module owns <sys/socket.h> varies between builds).
enum Socket {
    static let stream: Int32 = 1          // SOCK_STREAM
    static let nonblocking: Int32 = 0x800 // SOCK_NONBLOCK
    static let solSocket: Int32 = 1       // SOL_SOCKET
    static let error: Int32 = 4           // SO_ERROR
}
