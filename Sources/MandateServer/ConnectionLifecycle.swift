/// The phases of one client connection (RFC 9112 §9), pure so it can be tested without sockets.
/// The connection reports what happened; this decides what comes next and when time runs out.
public struct ConnectionLifecycle: Sendable, Equatable {
    public enum Phase: Sendable, Equatable { case idle, readingHead, exchange, closing }
    /// What to do after a request or response ends.
    public enum Step: Sendable, Equatable { case wait, nextRequest, close }
    /// What to do when the deadline passes.
    public enum Expiry: Sendable, Equatable { case none, close, requestTimeout }

    public let headerTimeout: Double
    public let idleTimeout: Double
    /// How long a closing connection keeps draining input after its last response (lingering close).
    public let lingerTimeout: Double
    public private(set) var phase: Phase = .idle
    public private(set) var deadline: Double
    public private(set) var keepAlive = true
    public private(set) var requestComplete = false
    public private(set) var responseComplete = false
    /// A refused request's body is read and thrown away so the connection can be reused.
    public private(set) var discarding = false

    public init(now: Double, headerTimeout: Double, idleTimeout: Double, lingerTimeout: Double = 2) {
        self.headerTimeout = headerTimeout; self.idleTimeout = idleTimeout; self.lingerTimeout = lingerTimeout
        deadline = now + idleTimeout
    }

    /// Bytes arrived from the client. The header clock starts at the first byte of a head (slowloris).
    public mutating func bytesReceived(now: Double) {
        switch phase {
        case .idle: phase = .readingHead; deadline = now + headerTimeout
        case .exchange where !requestComplete: deadline = now + idleTimeout
        default: break
        }
    }

    public mutating func headReceived(keepAlive: Bool, now: Double) {
        phase = .exchange
        self.keepAlive = keepAlive
        requestComplete = false; responseComplete = false; discarding = false
        deadline = now + idleTimeout
    }

    public mutating func discardBody() { discarding = true }
    public mutating func mustClose() { keepAlive = false }

    /// Output made progress; a client that stops reading is bounded by the idle timeout.
    public mutating func wrote(now: Double) {
        if phase == .exchange { deadline = now + idleTimeout }
    }

    public mutating func requestEnded(now: Double) -> Step { requestComplete = true; return settle(now) }
    public mutating func responseEnded(now: Double) -> Step { responseComplete = true; return settle(now) }

    public mutating func beginClosing(now: Double) { phase = .closing; deadline = now + lingerTimeout }

    private mutating func settle(_ now: Double) -> Step {
        guard phase == .exchange else { return .wait }
        if responseComplete && requestComplete {
            guard keepAlive else { return .close }
            phase = .idle; deadline = now + idleTimeout
            return .nextRequest
        }
        // Answered before the body arrived and not draining it: the rest of the input is unframed.
        if responseComplete && !discarding { return .close }
        return .wait
    }

    /// Whether the parser may take more input now (one request at a time; pipelined bytes wait).
    public var acceptsInput: Bool {
        switch phase {
        case .idle, .readingHead: true
        case .exchange: !requestComplete && !(responseComplete && !discarding)
        case .closing: false
        }
    }

    public func expiry(now: Double, writeBlocked: Bool) -> Expiry {
        guard now >= deadline else { return .none }
        switch phase {
        case .idle, .closing: return .close
        case .readingHead: return .requestTimeout
        // Waiting on the upstream is curl's timeouts' business; a stalled client is ours.
        case .exchange: return !requestComplete || writeBlocked ? .close : .none
        }
    }
}
