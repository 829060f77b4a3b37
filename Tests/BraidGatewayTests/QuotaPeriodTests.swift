import XCTest

@testable import BraidGateway

/// The data cap's calendar: day, ISO week and month periods, month-end clamping, local midnight.
final class QuotaPeriodTests: XCTestCase {
    /// Unix seconds of a UTC date and time.
    func at(_ y: Int64, _ m: Int64, _ d: Int64, _ hour: Int64 = 0) -> Int64 {
        QuotaPeriod.days(y, m, d) * 86_400 + hour * 3600
    }

    func testCivilDatesRoundTrip() {
        XCTAssertEqual(QuotaPeriod.days(1970, 1, 1), 0)
        XCTAssertEqual(QuotaPeriod.days(2000, 3, 1), 11_017)
        for z in stride(from: Int64(-800_000), to: 800_000, by: 997) {
            let (y, m, d) = QuotaPeriod.civil(z)
            XCTAssertEqual(QuotaPeriod.days(y, m, d), z)
        }
    }

    func testDay() {
        let p = QuotaPeriod(length: .day, resetDay: 1)
        let b = p.bounds(containing: at(2026, 11, 29, 19))
        XCTAssertEqual(b.start, at(2026, 11, 29))
        XCTAssertEqual(b.end, at(2026, 11, 30))
    }

    func testWeekStartsOnItsResetWeekday() {
        // 2026-11-29 is a Sunday; a Monday reset began 2026-11-23.
        let monday = QuotaPeriod(length: .week, resetDay: 1).bounds(containing: at(2026, 11, 29, 19))
        XCTAssertEqual(monday.start, at(2026, 11, 23))
        XCTAssertEqual(monday.end, at(2026, 11, 30))
        // A Sunday reset: the period began at this Sunday's midnight.
        let sunday = QuotaPeriod(length: .week, resetDay: 7).bounds(containing: at(2026, 11, 29, 0))
        XCTAssertEqual(sunday.start, at(2026, 11, 29))
    }

    func testMonthResetDayAndClampedMonthEnds() {
        let p = QuotaPeriod(length: .month, resetDay: 15)
        XCTAssertEqual(p.bounds(containing: at(2026, 11, 14, 23)).start, at(2026, 10, 15))
        XCTAssertEqual(p.bounds(containing: at(2026, 11, 15)).start, at(2026, 11, 15))
        XCTAssertEqual(p.bounds(containing: at(2026, 12, 20)).end, at(2027, 1, 15))
        // The 31st: April ends the period on the 30th, February on the 28th (29th in 2028).
        let last = QuotaPeriod(length: .month, resetDay: 31)
        XCTAssertEqual(last.bounds(containing: at(2026, 4, 10)).start, at(2026, 3, 31))
        XCTAssertEqual(last.bounds(containing: at(2026, 4, 10)).end, at(2026, 4, 30))
        XCTAssertEqual(last.bounds(containing: at(2027, 2, 28, 1)).start, at(2027, 2, 28))
        XCTAssertEqual(last.bounds(containing: at(2028, 2, 28, 1)).end, at(2028, 2, 29))
    }

    func testLocalMidnight() {
        // UTC+2: the local day 2026-11-30 starts at 22:00 UTC on the 29th.
        let p = QuotaPeriod(length: .day, resetDay: 1, utcOffset: 7200)
        XCTAssertEqual(p.bounds(containing: at(2026, 11, 29, 23)).start, at(2026, 11, 29, 22))
    }
}

/// Leap years and the reset days the calendar must get right.
final class QuotaPeriodLeapTests: XCTestCase {
    func at(_ y: Int64, _ m: Int64, _ d: Int64) -> Int64 { QuotaPeriod.days(y, m, d) * 86_400 }

    func testLeapYears() {
        // 2028 is a leap year, 2100 is not (divisible by 100), 2000 is (by 400).
        XCTAssertEqual(QuotaPeriod.daysIn(2028, 2), 29)
        XCTAssertEqual(QuotaPeriod.daysIn(2100, 2), 28)
        XCTAssertEqual(QuotaPeriod.daysIn(2000, 2), 29)
        let p = QuotaPeriod(length: .month, resetDay: 30)
        // January 30 to February's last day, then February's last day to March 30.
        XCTAssertEqual(p.bounds(containing: at(2028, 2, 10)).end, at(2028, 2, 29))
        XCTAssertEqual(p.bounds(containing: at(2028, 2, 29)).start, at(2028, 2, 29))
        XCTAssertEqual(p.bounds(containing: at(2028, 2, 29)).end, at(2028, 3, 30))
        XCTAssertEqual(p.bounds(containing: at(2100, 2, 28)).start, at(2100, 2, 28))
    }

    func testYearEndAndDayPeriodAtMidnight() {
        let p = QuotaPeriod(length: .month, resetDay: 1)
        XCTAssertEqual(p.bounds(containing: at(2026, 12, 31) + 86_399).end, at(2027, 1, 1))
        XCTAssertEqual(p.bounds(containing: at(2027, 1, 1)).start, at(2027, 1, 1))
        let day = QuotaPeriod(length: .day, resetDay: 1)
        XCTAssertEqual(day.bounds(containing: at(2026, 11, 30)).start, at(2026, 11, 30))  // midnight begins one
        XCTAssertEqual(day.bounds(containing: at(2026, 11, 30) - 1).end, at(2026, 11, 30))
    }
}
