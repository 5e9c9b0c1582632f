import Glibc
import MandateCore
import Synchronization

/// Keeps the proxy's `LiveRegistry` in step with the database without the request path ever
/// touching it: a new view is built and swapped on every admin API change before it answers,
/// and when another process (the CLI) commits, seen by polling `PRAGMA data_version`. The
/// activity the event loops count goes to the database once a second.
public final class RegistrySync: Sendable {
    public let store: RegistryStore
    public let live: LiveRegistry
    /// The data_version the live view was built at; held while a view is built and swapped, so
    /// that an older view never replaces a newer one.
    private let built = Mutex<Int64>(-1)
    private let running = Atomic<Bool>(false)

    public init(store: RegistryStore, live: LiveRegistry = LiveRegistry()) throws(RegistryRefusal) {
        self.store = store
        self.live = live
        try refresh()
    }

    /// Builds a view from the database and swaps it in; returns its version.
    @discardableResult
    public func refresh() throws(RegistryRefusal) -> Int64 {
        try built.withLock { (v: inout Int64) throws(RegistryRefusal) -> Int64 in
            let version = try store.dataVersion()
            let view = try store.view(now: Int64(time(nil)))
            v = version
            return live.replace(view)
        }
    }

    /// Refreshes when another connection has committed since the last view.
    func refreshIfChanged() throws(RegistryRefusal) {
        let now = try store.dataVersion()
        if built.withLock({ $0 }) != now { try refresh() }
    }

    /// Polls every `pollMillis`, and flushes activity every `flushMillis`, on a thread of its own
    /// until `stop()`. A failing database is reported and the last view stays.
    public func start(pollMillis: Int = 100, flushMillis: Int = 1000, report: @escaping @Sendable (String) -> Void) {
        running.store(true, ordering: .relaxed)
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        let box = Unmanaged.passRetained(Loop { [self] in
            var sinceFlush = 0
            var failing = false
            while running.load(ordering: .relaxed) {
                usleep(UInt32(pollMillis * 1000))
                do {
                    try refreshIfChanged()
                    sinceFlush += pollMillis
                    if sinceFlush >= flushMillis {
                        sinceFlush = 0
                        try flush()
                    }
                    if failing { report("registry: \(store.path) readable again") }
                    failing = false
                } catch {
                    if !failing { report("registry: \(error); keeping the last view") }
                    failing = true
                }
            }
        })
        var t = pthread_t()
        pthread_create(&t, &attr, { p in
            let loop = Unmanaged<Loop>.fromOpaque(p!).takeRetainedValue()
            loop.body()
            return nil
        }, box.toOpaque())
        pthread_detach(t)
    }

    /// Stops polling; the activity counted so far goes to the database.
    public func stop() {
        running.store(false, ordering: .relaxed)
        try? flush()
    }

    /// The counted activity, added to the agents' rows (put back if the database refuses it).
    public func flush() throws(RegistryRefusal) {
        let activity = live.takeActivity()
        do { try store.flush(activity) } catch {
            live.putBack(activity)
            throw error
        }
    }

    private final class Loop: @unchecked Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
}
