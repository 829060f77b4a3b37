/// Counts an uplink's bytes against its data cap (issue 13 item 4, not wired yet): the caller
/// feeds the device's byte counter (received + sent, so bonded, direct and braid's own traffic
/// all count) and the time; the meter says when the cap is reached and when a new period clears
/// it, and when the count is worth saving. Policy without I/O or clock.
struct QuotaMeter: Equatable {
    enum Change: Equatable {
        /// The cap was reached in this period: the uplink turns `quota_action` until `periodEnd`.
        case reached
        /// A new period began with the cap reached in the last one: the uplink is back.
        case cleared
    }

    var cap: UInt64
    var period: QuotaPeriod
    /// Bytes counted in the current period.
    private(set) var used: UInt64
    /// Unix seconds when the current period ends.
    private(set) var periodEnd: Int64
    /// The device counter at the last observation; nil before the first (or after a restart).
    private var lastCounter: UInt64?
    private var lastSaved: (at: Int64, used: UInt64)?

    /// `used` and `periodEnd` as a saved state had them (zero and nil: none), judged at `now`: a
    /// period that ended while the daemon was stopped starts over.
    init(cap: UInt64, period: QuotaPeriod, used: UInt64 = 0, periodEnd: Int64? = nil, now: Int64) {
        self.cap = cap
        self.period = period
        let current = period.bounds(containing: now).end
        if let periodEnd, periodEnd > now {
            self.used = used
            self.periodEnd = periodEnd
        } else {
            self.used = 0
            self.periodEnd = current
        }
    }

    var overCap: Bool { used >= cap }

    /// Adds what the device carried since the last call. A counter lower than the last one means
    /// the device was created again (a PPP or modem reconnect): it counts from zero.
    mutating func observe(counter: UInt64, now: Int64) -> Change? {
        let wasOver = overCap
        var change: Change? = nil
        if now >= periodEnd {
            used = 0
            periodEnd = period.bounds(containing: now).end
            if wasOver { change = .cleared }
        }
        if let last = lastCounter {
            let delta = counter >= last ? counter - last : counter
            used = used.addingReportingOverflow(delta).overflow ? UInt64.max : used + delta
        }
        lastCounter = counter
        if overCap && (change == .cleared || !wasOver) { change = .reached }
        return change
    }

    /// Whether the count should be written now: it changed, and the last write is at least a
    /// minute old (flash wears with each write), or a period ended since.
    func shouldSave(now: Int64) -> Bool {
        guard let last = lastSaved else { return true }
        return last.used != used && (now - last.at >= 60 || used < last.used)
    }

    mutating func saved(now: Int64) { lastSaved = (now, used) }

    static func == (a: QuotaMeter, b: QuotaMeter) -> Bool {
        a.cap == b.cap && a.period == b.period && a.used == b.used && a.periodEnd == b.periodEnd
            && a.lastCounter == b.lastCounter
    }
}
