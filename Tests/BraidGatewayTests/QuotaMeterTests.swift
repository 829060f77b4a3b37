import BraidConfig
import XCTest

@testable import BraidGateway

/// The data cap's counting: deltas of the device counter, a device created again, a reboot, the
/// cap crossed once, cleared by the next period or a raised cap, a saved count restored (with what
/// the device carried meanwhile), a clock behind the saved period, writes at most once a minute,
/// and the role the cap gives.
final class QuotaMeterTests: XCTestCase {
    let month = QuotaPeriod(length: .month, resetDay: 1)
    /// 2026-11-29 19:00 UTC.
    let t0 = QuotaPeriod.days(2026, 11, 29) * 86_400 + 19 * 3600
    let december = QuotaPeriod.days(2026, 12, 1) * 86_400
    let november = QuotaPeriod.days(2026, 11, 1) * 86_400

    func wan(_ bytes: UInt64, ifindex: UInt32 = 7, boot: String = "b1") -> QuotaMeter.Counter {
        QuotaMeter.Counter(ifindex: ifindex, boot: boot, bytes: bytes)
    }

    func testCountsDeltasAndCrossesTheCapOnce() {
        var m = QuotaMeter(cap: 1000, period: month, now: t0)
        XCTAssertNil(m.observe(wan(5_000), now: t0))  // first reading: a baseline, not usage
        XCTAssertNil(m.observe(wan(5_600), now: t0 + 1))
        XCTAssertEqual(m.used, 600)
        XCTAssertEqual(m.observe(wan(6_000), now: t0 + 2), .reached)  // exactly at the cap
        XCTAssertTrue(m.overCap)
        XCTAssertNil(m.observe(wan(7_000), now: t0 + 3))
        XCTAssertEqual(m.used, 2000)
    }

    func testADeviceCreatedAgainOrARebootCountsItsWholeCounter() {
        var m = QuotaMeter(cap: 10_000, period: month, now: t0)
        _ = m.observe(wan(9_000), now: t0)
        _ = m.observe(wan(300, ifindex: 8), now: t0 + 1)  // ppp0 came back as a new device
        XCTAssertEqual(m.used, 300)
        _ = m.observe(wan(9_400, ifindex: 8, boot: "b2"), now: t0 + 2)  // same ifindex after a reboot
        XCTAssertEqual(m.used, 9_700)
        _ = m.observe(nil, now: t0 + 3)  // the device is gone: nothing counted, the last reading kept
        XCTAssertEqual(m.used, 9_700)
    }

    func testTheNextPeriodClearsTheCap() {
        var m = QuotaMeter(cap: 100, period: month, now: t0)
        _ = m.observe(wan(0), now: t0)
        XCTAssertEqual(m.observe(wan(200), now: t0 + 1), .reached)
        XCTAssertEqual(m.periodStart, november)
        XCTAssertEqual(m.periodEnd, december)
        XCTAssertNil(m.observe(wan(210), now: december - 1))
        XCTAssertEqual(m.observe(wan(250), now: december), .cleared)
        XCTAssertEqual(m.used, 40)  // what the device carried since the last reading, in the new period
        XCTAssertEqual(m.periodEnd, QuotaPeriod.days(2027, 1, 1) * 86_400)
    }

    func testARaisedCapClearsAndALoweredOneReaches() {
        var m = QuotaMeter(cap: 100, period: month, now: t0)
        _ = m.observe(wan(0), now: t0)
        _ = m.observe(wan(150), now: t0)
        XCTAssertEqual(m.reconfigure(cap: 200, period: month, now: t0), .cleared)
        XCTAssertEqual(m.reconfigure(cap: 150, period: month, now: t0), .reached)
        // A new reset day moves the period's end; the count stays.
        XCTAssertNil(m.reconfigure(cap: 150, period: QuotaPeriod(length: .month, resetDay: 15), now: t0))
        XCTAssertEqual(m.used, 150)
        XCTAssertEqual(m.periodEnd, QuotaPeriod.days(2026, 12, 15) * 86_400)
    }

    func testASavedCountSurvivesARestartWithWhatTheDeviceCarriedMeanwhile() {
        var before = QuotaMeter(cap: 1000, period: month, now: t0)
        _ = before.observe(wan(10_000), now: t0)
        _ = before.observe(wan(10_900), now: t0 + 10)
        let saved = before.record
        // Killed; the device carried 300 more bytes before the new run's first reading.
        var after = QuotaMeter(cap: 1000, period: month, saved: saved, now: t0 + 20)
        XCTAssertEqual(after.used, 900)
        XCTAssertEqual(after.observe(wan(11_200), now: t0 + 20), .reached)
        XCTAssertEqual(after.used, 1200)
        // After a reboot the same ifindex counts from zero again: all of it is new.
        var rebooted = QuotaMeter(cap: 1000, period: month, saved: saved, now: t0 + 20)
        _ = rebooted.observe(wan(50, boot: "b2"), now: t0 + 20)
        XCTAssertEqual(rebooted.used, 950)
    }

    func testASavedCountFromAnEndedPeriodStartsOver() {
        let saved = QuotaMeter.Record(
            used: 150, periodStart: november - 31 * 86_400, periodEnd: november, counter: wan(5))
        var m = QuotaMeter(cap: 100, period: month, saved: saved, now: t0)
        XCTAssertEqual(m.used, 0)
        XCTAssertEqual(m.periodEnd, december)
        XCTAssertNil(m.observe(wan(500), now: t0))  // no saved baseline across periods: a fresh one
        XCTAssertEqual(m.used, 0)
    }

    func testAClockBehindTheSavedPeriodKeepsIt() {
        // A box without a real-time clock boots at its build date, before NTP sets the time.
        let saved = QuotaMeter.Record(used: 150, periodStart: november, periodEnd: december, counter: nil)
        let early = QuotaPeriod.days(2026, 6, 1) * 86_400
        var m = QuotaMeter(cap: 100, period: month, saved: saved, now: early)
        XCTAssertTrue(m.overCap)
        XCTAssertEqual(m.periodEnd, december)
        _ = m.observe(wan(0), now: t0)  // NTP stepped the clock to the real time
        XCTAssertEqual(m.used, 150)
    }

    func testWritesAtMostOnceAMinuteAndAtANewPeriod() {
        var m = QuotaMeter(cap: 1 << 40, period: month, now: t0)
        XCTAssertTrue(m.shouldSave(now: t0))
        m.saved(now: t0)
        _ = m.observe(wan(0), now: t0)
        _ = m.observe(wan(10), now: t0 + 1)
        XCTAssertFalse(m.shouldSave(now: t0 + 59))
        XCTAssertTrue(m.shouldSave(now: t0 + 60))
        m.saved(now: t0 + 60)
        XCTAssertFalse(m.shouldSave(now: t0 + 200))  // nothing new to write
        _ = m.observe(wan(10), now: december)
        XCTAssertTrue(m.shouldSave(now: december))  // the reset is written at once
    }

    func testTheCapsRole() {
        let backup = UplinkQuota(bytes: 1, action: .backup)
        let off = UplinkQuota(bytes: 1, action: .off)
        XCTAssertEqual(QuotaMeter.effectiveRole(configured: .active, quota: backup, overCap: false), .active)
        XCTAssertEqual(QuotaMeter.effectiveRole(configured: .active, quota: backup, overCap: true), .backup)
        XCTAssertEqual(QuotaMeter.effectiveRole(configured: .active, quota: off, overCap: true), .off)
        XCTAssertEqual(QuotaMeter.effectiveRole(configured: .backup, quota: off, overCap: true), .off)
        XCTAssertEqual(QuotaMeter.effectiveRole(configured: .off, quota: backup, overCap: true), .off)
        XCTAssertEqual(QuotaMeter.effectiveRole(configured: .active, quota: nil, overCap: true), .active)
    }
}

/// The usage file: what is written reads back, and a damaged file is refused with its line.
final class QuotaLedgerTests: XCTestCase {
    func testRoundTrip() throws {
        let ledger = QuotaLedger(records: [
            "lte": .init(
                used: 1_234_567, periodStart: 1_764_547_200, periodEnd: 1_767_225_600,
                counter: .init(ifindex: 7, boot: "0b5c2f5e-1d7a-4f7e-9c11-3d2b7a0c9e01", bytes: 98_765)),
            "dsl": .init(used: 0, periodStart: 100, periodEnd: 200, counter: nil),
        ])
        XCTAssertEqual(
            ledger.text,
            QuotaLedger.header + "\n" + "uplink dsl used 0 start 100 end 200\n"
                + "uplink lte used 1234567 start 1764547200 end 1767225600 device 7 "
                + "0b5c2f5e-1d7a-4f7e-9c11-3d2b7a0c9e01 98765\n")
        XCTAssertEqual(try QuotaLedger(parsing: ledger.text), ledger)
    }

    func testDamageIsRefusedWithItsLine() {
        for bad in [
            "uplink lte used 12 start 100", "uplink lte used x start 100 end 200",
            "uplink lte used 1 start 200 end 100", "uplink lte used 1 start 100 end 200 device 7 boot",
            "uplink a used 1 start 1 end 2\nuplink a used 1 start 1 end 2",
        ] {
            XCTAssertThrowsError(try QuotaLedger(parsing: "# c\n" + bad), bad) { error in
                XCTAssertTrue("\(error)".hasPrefix("line 2") || "\(error)".hasPrefix("line 3"), "\(error)")
            }
        }
    }
}
