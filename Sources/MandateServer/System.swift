import CCurl
import Glibc
import CMandateShim

@inline(__always)
func monotonicNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

@inline(__always)
func unixMillisNow() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}

/// Request ids: a random per-loop prefix and a counter, 32 hex digits. Unique without a syscall
/// or a lock per request.
struct RequestIDGenerator {
    private var prefix: UInt64
    private var counter: UInt64 = 0

    init() {
        var rng = SystemRandomNumberGenerator()
        prefix = rng.next()
    }

    mutating func next() -> String {
        counter &+= 1
        let a = prefix, b = counter
        return String(unsafeUninitializedCapacity: 32) { buf in
            let hex: StaticString = "0123456789abcdef"
            hex.withUTF8Buffer { h in
                for i in 0 ..< 16 {
                    buf[i] = h[Int((a >> (60 - 4 * UInt64(i))) & 15)]
                    buf[16 + i] = h[Int((b >> (60 - 4 * UInt64(i))) & 15)]
                }
            }
            return 32
        }
    }
}

/// libcurl constants that are macros (not imported as typed values).
enum Curl {
    static let writePause = 0x1000_0001
    static let readPause = 0x1000_0001
    static let readAbort = 0x1000_0000
    static let pauseRecv: Int32 = 1 << 0
    static let pauseSend: Int32 = 1 << 2
    static let socketTimeout: Int32 = -1
    static let pollIn: Int32 = 1, pollOut: Int32 = 2, pollInOut: Int32 = 3, pollRemove: Int32 = 4
    static let selectIn: Int32 = 1, selectOut: Int32 = 2, selectErr: Int32 = 4
}

/// Runs `body` on a new detached-from-Swift pthread; returns its handle for joining.
func startThread(_ body: @escaping @Sendable () -> Void) -> pthread_t {
    final class Box: @unchecked Sendable { let body: @Sendable () -> Void; init(_ b: @escaping @Sendable () -> Void) { body = b } }
    var tid = pthread_t()
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    pthread_create(&tid, nil, { p in
        let box = Unmanaged<Box>.fromOpaque(p!).takeRetainedValue()
        box.body()
        return nil
    }, box)
    return tid
}

/// epoll event bits as UInt32.
enum Epoll {
    static let input = UInt32(MANDATE_EPOLLIN)
    static let output = UInt32(MANDATE_EPOLLOUT)
    static let error = UInt32(MANDATE_EPOLLERR)
    static let hangup = UInt32(MANDATE_EPOLLHUP)
    static let readHangup = UInt32(MANDATE_EPOLLRDHUP)
}

/// Whether something already listens on host:port (see `mandate_port_in_use`).
public func portInUse(host: String, port: Int) -> Bool { mandate_port_in_use(host, Int32(port)) == 1 }

/// A NUL-terminated C buffer as text (messages from the shim).
func cText(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Why a file cannot be read, or nil when it can.
func unreadable(_ path: String) -> String? {
    access(path, R_OK) == 0 ? nil : String(cString: strerror(errno))
}
