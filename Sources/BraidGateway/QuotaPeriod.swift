import BraidConfig

/// The calendar of an uplink's data cap: when the period that
/// holds a moment began and when it ends, for `quota_period` `day`, `week` or `month` and
/// `quota_reset_day`. Policy without a clock or a time zone database: callers pass Unix seconds
/// and the offset of the operator's calendar, so tests can move time freely.
///
/// A monthly reset on a day the month does not have (the 31st in April, the 29th to 31st in
/// February) happens on the month's last day, as carriers bill.
struct QuotaPeriod: Equatable {
    typealias Length = QuotaPeriodLength

    var length: Length
    /// `month`: day of the month, 1-31; `week`: ISO weekday, 1 (Monday) to 7; ignored for `day`.
    var resetDay: Int
    /// Seconds east of UTC of the calendar the periods follow (midnight is local midnight).
    var utcOffset: Int64 = 0

    /// Start (inclusive) and end (exclusive), Unix seconds, of the period holding `now`.
    func bounds(containing now: Int64) -> (start: Int64, end: Int64) {
        let day: Int64 = 86_400
        let today = floorDiv(now + utcOffset, day)
        let (startDay, endDay): (Int64, Int64)
        switch length {
        case .day:
            (startDay, endDay) = (today, today + 1)
        case .week:
            // 1970-01-01 was a Thursday (ISO weekday 4).
            let weekday = floorMod(today + 3, 7) + 1
            let back = floorMod(weekday - Int64(resetDay), 7)
            (startDay, endDay) = (today - back, today - back + 7)
        case .month:
            let (y, m, d) = Self.civil(today)
            let resetHere = Self.reset(y, m, resetDay)
            if d >= resetHere {
                let (ny, nm) = m == 12 ? (y + 1, 1) : (y, m + 1)
                (startDay, endDay) = (
                    Self.days(y, m, resetHere), Self.days(ny, nm, Self.reset(ny, nm, resetDay))
                )
            } else {
                let (py, pm) = m == 1 ? (y - 1, 12) : (y, m - 1)
                (startDay, endDay) = (Self.days(py, pm, Self.reset(py, pm, resetDay)), Self.days(y, m, resetHere))
            }
        }
        return (startDay * day - utcOffset, endDay * day - utcOffset)
    }

    private static func reset(_ y: Int64, _ m: Int64, _ resetDay: Int) -> Int64 {
        min(Int64(max(resetDay, 1)), daysIn(y, m))
    }

    static func daysIn(_ y: Int64, _ m: Int64) -> Int64 {
        switch m {
        case 2: (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    static func days(_ y: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y - 1 : y
        let era = floorDiv(y, 400)
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The date of a day number (H. Hinnant's civil_from_days).
    static func civil(_ z: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = z + 719_468
        let era = floorDiv(z, 146_097)
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}

private func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : -((-a + b - 1) / b) }
private func floorMod(_ a: Int64, _ b: Int64) -> Int64 { a - floorDiv(a, b) * b }
