import Testing
@testable import MandateServer

@Suite struct ConnectionLifecycleTests {
    func fresh() -> ConnectionLifecycle { ConnectionLifecycle(now: 0, headerTimeout: 10, idleTimeout: 60) }

    @Test func closesIdleConnectionSilentlyAfterIdleTimeout() {
        let l = fresh()
        #expect(l.expiry(now: 59, writeBlocked: false) == .none)
        #expect(l.expiry(now: 60, writeBlocked: false) == .close)
    }

    @Test func headerTimeoutStartsAtFirstByteAndAnswers408() {
        var l = fresh()
        l.bytesReceived(now: 30)
        #expect(l.phase == .readingHead)
        l.bytesReceived(now: 39)  // more bytes do not extend the header clock
        #expect(l.expiry(now: 39.9, writeBlocked: false) == .none)
        #expect(l.expiry(now: 40, writeBlocked: false) == .requestTimeout)
    }

    @Test func keepsAliveAfterRequestAndResponseEnd() {
        var l = fresh()
        l.bytesReceived(now: 1)
        l.headReceived(keepAlive: true, now: 1)
        #expect(l.requestEnded(now: 1) == .wait)
        #expect(!l.acceptsInput)  // pipelined requests wait for this response
        #expect(l.responseEnded(now: 2) == .nextRequest)
        #expect(l.phase == .idle)
        #expect(l.acceptsInput)
        #expect(l.deadline == 62)
    }

    @Test func closesAfterResponseWithoutKeepAlive() {
        var l = fresh()
        l.headReceived(keepAlive: false, now: 1)
        _ = l.requestEnded(now: 1)
        #expect(l.responseEnded(now: 2) == .close)
    }

    @Test func drainsBodyOfRefusedRequestThenContinues() {
        var l = fresh()
        l.headReceived(keepAlive: true, now: 1)
        l.discardBody()
        #expect(l.responseEnded(now: 1) == .wait)
        #expect(l.acceptsInput)
        #expect(l.requestEnded(now: 2) == .nextRequest)
    }

    @Test func closesWhenAnsweredBeforeBodyWithoutDraining() {
        var l = fresh()
        l.headReceived(keepAlive: true, now: 1)
        #expect(l.responseEnded(now: 1) == .close)
        #expect(!l.acceptsInput)
    }

    @Test func waitingOnUpstreamIsNotAClientTimeout() {
        var l = fresh()
        l.headReceived(keepAlive: true, now: 0)
        _ = l.requestEnded(now: 0)
        #expect(l.expiry(now: 1000, writeBlocked: false) == .none)
        #expect(l.expiry(now: 1000, writeBlocked: true) == .close)
    }

    @Test func stalledRequestBodyTimesOut() {
        var l = fresh()
        l.headReceived(keepAlive: true, now: 0)
        l.bytesReceived(now: 50)
        #expect(l.expiry(now: 100, writeBlocked: false) == .none)
        #expect(l.expiry(now: 110, writeBlocked: false) == .close)
    }

    @Test func lingeringCloseIsBounded() {
        var l = fresh()
        l.beginClosing(now: 5)
        #expect(!l.acceptsInput)
        #expect(l.expiry(now: 7, writeBlocked: false) == .close)
    }
}
