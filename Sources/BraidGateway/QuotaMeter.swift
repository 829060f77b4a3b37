import BraidConfig

/// Counts an uplink's bytes against its data cap: the caller feeds the device's byte counter
/// (received + sent, so bonded, direct and braid's own traffic all count) and the time; the meter
/// says when the cap is reached and when a new period clears it, and when the count is worth
/// saving. Policy without I/O or clock.
struct QuotaMeter: Equatable {
    enum Change: Equatable {
        /// The cap was reached in this period: the uplink turns `quota_action` until `periodEnd`.
        case reached
        /// No longer over the cap (a new period, a raised cap): the configured role is back.
        case cleared
    }

    /// A device's byte counter and what tells whether a later reading is of the same counter: a
    /// device created again (a PPP or modem reconnect) gets a new ifindex, a reboot a new boot id,
    /// and either starts its counter from zero.
    struct Counter: Equatable {
        var ifindex: UInt32
        /// /proc/sys/kernel/random/boot_id.
        var boot: String
        /// Bytes received + sent since the device was created.
        var bytes: UInt64
    }

    /// What is kept on flash between runs (QuotaLedger).
    struct Record: Equatable {
        var used: UInt64
        var periodStart: Int64
        var periodEnd: Int64
        /// The counter `used` was last brought up to; nil when the device was never read.
        var counter: Counter?
    }

    var cap: UInt64
    var period: QuotaPeriod
    /// Bytes counted in the current period.
    private(set) var used: UInt64
    /// Unix seconds when the current period began and ends.
    private(set) var periodStart: Int64
    private(set) var periodEnd: Int64
    /// The counter at the last observation; nil before the first with no saved one.
    private(set) var counter: Counter?
    private var lastSaved: (at: Int64, used: UInt64, periodEnd: Int64)?

    /// A meter at `now`, from a saved record when there is one. Its usage is kept unless its
    /// period ended meanwhile; its counter too, so what the device carried while the daemon was
    /// stopped (or since the last write before a kill) is counted at the first observation. A
    /// clock behind the saved period (a box without a real-time clock, before NTP) keeps the
    /// saved period rather than starting one that would reset the count when NTP steps forward.
    init(cap: UInt64, period: QuotaPeriod, saved: Record? = nil, now: Int64) {
        self.cap = cap
        self.period = period
        let bounds = period.bounds(containing: now)
        if let saved, now < saved.periodEnd {
            used = saved.used
            counter = saved.counter
            (periodStart, periodEnd) = now < saved.periodStart ? (saved.periodStart, saved.periodEnd) : bounds
        } else {
            used = 0
            counter = nil
            (periodStart, periodEnd) = bounds
        }
    }

    var overCap: Bool { used >= cap }

    var record: Record { Record(used: used, periodStart: periodStart, periodEnd: periodEnd, counter: counter) }

    /// Takes a reload's cap and calendar. The count stays: a new reset day or period length moves
    /// the end of the current period (from `now`), and a raised cap may clear it.
    mutating func reconfigure(cap: UInt64, period: QuotaPeriod, now: Int64) -> Change? {
        let wasOver = overCap
        self.cap = cap
        if period != self.period {
            self.period = period
            if now >= periodStart { (periodStart, periodEnd) = period.bounds(containing: now) }
        }
        return Self.change(wasOver, overCap)
    }

    /// Adds what the device carried since the last reading. A period that ended starts over
    /// first. nil `reading`: the device is missing now; the next one that appears counts from zero.
    mutating func observe(_ reading: Counter?, now: Int64) -> Change? {
        let wasOver = overCap
        if now >= periodEnd {
            used = 0
            (periodStart, periodEnd) = period.bounds(containing: now)
        }
        if let reading {
            if let last = counter {
                let same = last.ifindex == reading.ifindex && last.boot == reading.boot && reading.bytes >= last.bytes
                let delta = same ? reading.bytes - last.bytes : reading.bytes
                used = used.addingReportingOverflow(delta).overflow ? UInt64.max : used + delta
            }
            counter = reading
        }
        return Self.change(wasOver, overCap)
    }

    private static func change(_ before: Bool, _ after: Bool) -> Change? {
        before == after ? nil : (after ? .reached : .cleared)
    }

    /// Whether the count should be written now: never written, or it changed and the last write
    /// is at least a minute old (flash wears with each write), or a new period began since.
    func shouldSave(now: Int64) -> Bool {
        guard let last = lastSaved else { return true }
        if last.periodEnd != periodEnd { return true }
        return last.used != used && now - last.at >= 60
    }

    mutating func saved(now: Int64) { lastSaved = (now, used, periodEnd) }

    static func == (a: QuotaMeter, b: QuotaMeter) -> Bool {
        a.cap == b.cap && a.period == b.period && a.record == b.record
    }

    /// What the uplink does now: its configured role, or the cap's action once the cap is
    /// reached (an uplink configured `off` stays off). The one place the cap overrides a role.
    static func effectiveRole(configured: UplinkRole, quota: UplinkQuota?, overCap: Bool) -> UplinkRole {
        guard let quota, overCap, configured != .off else { return configured }
        switch quota.action {
        case .backup: return .backup
        case .off: return .off
        }
    }
}
