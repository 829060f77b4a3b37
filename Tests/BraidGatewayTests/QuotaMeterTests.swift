import XCTest

@testable import BraidGateway

/// The data cap's counting: deltas of the device counter, a counter that restarts, the cap reached
/// once, cleared by the next period, a saved count restored, writes at most once a minute.
final class QuotaMeterTests: XCTestCase {
    let month = QuotaPeriod(length: .month, resetDay: 1)
    /// 2026-11-29 19:00 UTC.
    let t0 = QuotaPeriod.days(2026, 11, 29) * 86_400 + 19 * 3600

    func testCountsDeltasAndReachesTheCapOnce() {
        var m = QuotaMeter(cap: 1000, period: month, now: t0)
        XCTAssertNil(m.observe(counter: 5_000, now: t0))  // first sample: a baseline, not usage
        XCTAssertNil(m.observe(counter: 5_600, now: t0 + 1))
        XCTAssertEqual(m.used, 600)
        XCTAssertEqual(m.observe(counter: 6_000, now: t0 + 2), .reached)
        XCTAssertNil(m.observe(counter: 7_000, now: t0 + 3))
        XCTAssertEqual(m.used, 2000)
    }

    func testARestartedCounterCountsFromZero() {
        var m = QuotaMeter(cap: 10_000, period: month, now: t0)
        _ = m.observe(counter: 9_000, now: t0)
        _ = m.observe(counter: 300, now: t0 + 1)  // ppp0 came back
        XCTAssertEqual(m.used, 300)
    }

    func testTheNextPeriodClearsTheCap() {
        var m = QuotaMeter(cap: 100, period: month, now: t0)
        _ = m.observe(counter: 0, now: t0)
        XCTAssertEqual(m.observe(counter: 200, now: t0 + 1), .reached)
        let december = QuotaPeriod.days(2026, 12, 1) * 86_400
        XCTAssertEqual(m.periodEnd, december)
        XCTAssertEqual(m.observe(counter: 250, now: december), .cleared)
        XCTAssertEqual(m.used, 50)
    }

    func testASavedCountSurvivesARestartUnlessItsPeriodEnded() {
        let end = QuotaPeriod.days(2026, 12, 1) * 86_400
        let kept = QuotaMeter(cap: 100, period: month, used: 150, periodEnd: end, now: t0)
        XCTAssertTrue(kept.overCap)
        let stale = QuotaMeter(cap: 100, period: month, used: 150, periodEnd: t0 - 1, now: t0)
        XCTAssertEqual(stale.used, 0)
        XCTAssertEqual(stale.periodEnd, end)
    }

    func testWritesAtMostOnceAMinute() {
        var m = QuotaMeter(cap: 1 << 40, period: month, now: t0)
        XCTAssertTrue(m.shouldSave(now: t0))
        m.saved(now: t0)
        _ = m.observe(counter: 0, now: t0)
        _ = m.observe(counter: 10, now: t0 + 1)
        XCTAssertFalse(m.shouldSave(now: t0 + 59))
        XCTAssertTrue(m.shouldSave(now: t0 + 60))
        m.saved(now: t0 + 60)
        XCTAssertFalse(m.shouldSave(now: t0 + 200))  // nothing new to write
    }
}
