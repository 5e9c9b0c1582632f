import MandateHTTP
import Synchronization

/// Swaps the whole verified configuration atomically on reload (SIGHUP). In-flight requests
/// finish with the value they started with; the replay store carries over so that a reload never
/// reopens a replay window.
public final class ReloadableGate: RequestGate {
    private let current: Mutex<Verifier>

    public init(_ verifier: Verifier) { current = Mutex(verifier) }

    public var verifier: Verifier { current.withLock { $0 } }

    public func replace(with next: Verifier) { current.withLock { $0 = next } }

    public func admit(_ head: HTTPRequestHead, peer: Peer, requestID: String, now: Int64) -> Admission {
        verifier.admit(head, peer: peer, requestID: requestID, now: now)
    }
}
