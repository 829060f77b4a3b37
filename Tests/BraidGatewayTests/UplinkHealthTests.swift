import XCTest

@testable import BraidGateway

/// The probe state machine with a hand-driven clock: milliseconds in, transitions out.
final class UplinkHealthTests: XCTestCase {
    let ms: UInt64 = 1_000_000

    func testSilentOutageGoesDownAfterTheWindowAndComesBackAfterGoodProbes() {
        var h = UplinkHealth(downAfterNanos: 1000 * ms, upAfter: 3, now: 0)
        var t: UInt64 = 0
        var seq: UInt16 = 0
        // Healthy: every probe answered 20 ms later.
        for _ in 0..<10 {
            t += 200 * ms
            seq += 1
            h.sent(seq: seq, at: t)
            XCTAssertNil(h.replied(seq: seq, rttNanos: 20 * ms, at: t + 20 * ms))
            XCTAssertNil(h.tick(now: t + 20 * ms))
        }
        XCTAssertEqual(h.state, .up)
        XCTAssertEqual(h.loss, 0)
        // Silence: down once no reply for more than 1000 ms, not before.
        let lastReply = t + 20 * ms
        var wentDownAt: UInt64?
        while wentDownAt == nil && t < lastReply + 3000 * ms {
            t += 200 * ms
            seq += 1
            h.sent(seq: seq, at: t)
            if case .wentDown = h.tick(now: t) { wentDownAt = t }
        }
        let downAt = try! XCTUnwrap(wentDownAt)
        XCTAssertGreaterThan(downAt - lastReply, 1000 * ms)
        XCTAssertLessThanOrEqual(downAt - lastReply, 1200 * ms)
        XCTAssertEqual(h.state, .down)
        // Two good probes are not enough, the third brings it up.
        for n in 1...3 {
            t += 200 * ms
            seq += 1
            h.sent(seq: seq, at: t)
            let transition = h.replied(seq: seq, rttNanos: 30 * ms, at: t + 30 * ms)
            XCTAssertEqual(transition, n == 3 ? .cameUp : nil)
        }
        XCTAssertEqual(h.state, .up)
        // The probes sent into the silence settle as lost once they are older than the window.
        XCTAssertNil(h.tick(now: t + 30 * ms))
        XCTAssertGreaterThan(h.loss ?? 0, 0)
    }

    /// As the supervisor drives it: a tick after every probe sent. The probes sent into the outage
    /// settle as lost while the path already answers again; they are older than the answers and
    /// must not reset the count, so the uplink is back after `upAfter` answers.
    func testProbesLostInTheOutageDoNotDelayTheReturn() {
        var h = UplinkHealth(downAfterNanos: 1000 * ms, upAfter: 3, now: 0)
        var t: UInt64 = 0
        var seq: UInt16 = 0
        var cameUpAt: UInt64?
        var outageEndedAt: UInt64?
        while cameUpAt == nil && t < 20_000 * ms {
            t += 200 * ms
            seq += 1
            h.sent(seq: seq, at: t)
            let silent = t > 2000 * ms && t <= 6000 * ms
            if !silent {
                if t > 6000 * ms && outageEndedAt == nil { outageEndedAt = t }
                if h.replied(seq: seq, rttNanos: ms, at: t + ms) == .cameUp { cameUpAt = t + ms }
            }
            if h.tick(now: t + ms) == .cameUp { cameUpAt = t + ms }
        }
        XCTAssertEqual(h.state, .up)
        let back = try! XCTUnwrap(cameUpAt) - XCTUnwrap(outageEndedAt)
        // Three answers 200 ms apart: 401 ms after the first one, not a further second.
        XCTAssertLessThanOrEqual(back, 401 * ms, "up \(back / ms) ms after the path answered again")
    }

    /// A probe lost between two answered ones breaks the run, whenever it settles.
    func testALossAmongTheAnswersBreaksTheRun() {
        var h = UplinkHealth(downAfterNanos: 1000 * ms, upAfter: 2, now: 0)
        XCTAssertNotNil(h.force(down: "no carrier", now: 0))
        h.sent(seq: 1, at: 100 * ms)
        XCTAssertNil(h.replied(seq: 1, rttNanos: ms, at: 101 * ms))
        h.sent(seq: 2, at: 300 * ms)  // lost
        h.sent(seq: 3, at: 500 * ms)
        XCTAssertNil(h.tick(now: 1400 * ms))  // seq 2 settles as lost: the answer to 1 no longer counts
        XCTAssertNil(h.replied(seq: 3, rttNanos: 950 * ms, at: 1450 * ms))
        XCTAssertEqual(h.state, .down)
        h.sent(seq: 4, at: 1500 * ms)
        XCTAssertEqual(h.replied(seq: 4, rttNanos: ms, at: 1501 * ms), .cameUp)
    }

    func testLateAndUnknownRepliesAreIgnored() {
        var h = UplinkHealth(downAfterNanos: 1000 * ms, upAfter: 1, now: 0)
        h.sent(seq: 1, at: 0)
        XCTAssertNil(h.replied(seq: 99, rttNanos: ms, at: ms))  // never sent
        guard case .wentDown = h.tick(now: 1500 * ms) else {  // seq 1 settles as lost, the uplink goes down
            return XCTFail("no transition to down after 1500 ms of silence")
        }
        XCTAssertEqual(h.loss, 1)
        XCTAssertNil(h.replied(seq: 1, rttNanos: 1600 * ms, at: 1600 * ms))  // too late to count
        XCTAssertEqual(h.state, .down)
    }

    func testCarrierLossForcesDownAtOnce() {
        var h = UplinkHealth(downAfterNanos: 1000 * ms, upAfter: 3, now: 0)
        XCTAssertEqual(h.force(down: "no carrier", now: 10 * ms), .wentDown(reason: "no carrier"))
        XCTAssertNil(h.force(down: "no carrier", now: 20 * ms))  // already down: one transition
    }
}
