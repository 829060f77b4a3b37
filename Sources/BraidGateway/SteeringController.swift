import BraidConfig

/// Which uplinks the gateway holds back from bonded traffic beyond what their roles say: an
/// `overflow` uplink while the active uplinks have room, and an uplink over its `share` of the
/// bonded bytes. Sans-I/O: each tick it is given every uplink's byte counter, probe round trip
/// and health with the time, and answers with the uplinks whose subflows must be marked backup.
///
/// The lever is MPTCP's backup priority (MP_PRIO, RFC 8684 section 3.3.8). Linux's default
/// scheduler (net/mptcp/protocol.c, `mptcp_subflow_get_send`, 6.18) counts a subflow as backup when
/// either end asked for it (`backup || request_bkup`) and picks among backup subflows only when no
/// non-backup subflow is usable: a backup subflow next to a live active one carries nothing, in
/// either direction, since the path manager's MPTCP_PM_CMD_SET_FLAGS also tells the concentrator.
/// The kernel does not fall back to a backup subflow when the active ones are merely full (a full
/// send buffer makes it wait), so "carry only when saturated" and "at most N percent" are decided
/// here, by turning the flag off and on.
///
/// Saturation is judged from what braid sees without help from the installer: an active uplink
/// is saturated when it carries traffic and its probes' smoothed round trip has grown by
/// `saturationRTTNanos` over its own recent minimum. A full bottleneck (a DSL modem's buffer, the
/// operator's shaper) queues, and the queue shows in every packet's delay whichever direction is
/// full; a link with room does not queue, whatever its rate. Throughput alone cannot tell "all
/// the link can do" from "all that is asked", and a configured line rate goes stale. The round
/// trip cannot tell when to stop, though, since the overflow uplink drains the actives' queues as
/// soon as it carries: the actives' rate when they were found saturated is kept as their capacity,
/// and the overflow uplink stands by again once all bonded traffic fits well within it.
struct SteeringController {
    /// One uplink as the supervisor sees it at a tick.
    struct Input: Equatable {
        var name: String
        var role: UplinkRole
        /// The cap in force (the lower of the uplink's own `share` and its class's), or nil.
        var share: UInt8?
        /// Probes pass and the uplink can carry subflows.
        var up: Bool
        /// Bytes the uplink's device has sent and received, both directions together.
        var bytes: UInt64
        /// The probes' smoothed round trip, nanoseconds; nil before the first answer.
        var rttNanos: UInt64?
    }

    /// What an overflow uplink is doing.
    enum OverflowState: String, Equatable {
        /// Marked backup: the active uplinks have room.
        case standby
        /// Carrying bonded traffic: the active uplinks are saturated, or none is up.
        case carrying
    }

    /// What the controller knows of one uplink between ticks.
    struct Track {
        var lastBytes: UInt64?
        /// Bytes of each of the last ticks, newest last (at most `windowTicks`).
        var deltas: [UInt64] = []
        /// The smallest round trip of each of the last seconds, newest last.
        var rttMinima: [UInt64] = []
        var rttMinimumThisSecond: UInt64?
        var overflow: OverflowState = .standby
        var overflowSince: UInt64 = 0
        /// Total bonded bytes per second the actives carried when found saturated.
        var capacity: Double = 0
        /// When all bonded traffic first fitted within the capacity, during carrying.
        var fitsSince: UInt64?
        /// Over its share at the last tick.
        var capped = false
    }

    /// How often `tick` is meant to be called.
    static let tickNanos: UInt64 = 250_000_000
    /// The window of the share: 10 seconds of ticks. Long enough that a share is a share of real
    /// traffic and holds within a few points, short enough that a burst after a quiet spell is not
    /// all given to the capped uplink.
    static let windowTicks = 40
    /// Round-trip growth that means a queue has built up at the bottleneck: the lab's shaper
    /// holds up to 100 ms, a DSL modem several hundred; jitter of an idle line stays well below.
    static let saturationRTTNanos: UInt64 = 15_000_000
    /// Below this rate an uplink is idle, whatever its round trip (a probe that met another
    /// device's burst on a shared segment says nothing about braid's load): 32 kB/s.
    static let busyBytesPerSecond: Double = 32_000
    /// The round-trip minimum is taken over this many seconds: a route that changes for a longer
    /// path is learned within two minutes.
    static let rttMinimumSeconds = 120
    /// An overflow uplink carries at least this long once it starts, so a burst that fills the
    /// actives does not flap it.
    static let minimumCarryNanos: UInt64 = 5_000_000_000
    /// It stands by again once all bonded traffic has stayed under this part of the actives'
    /// capacity for `fitsForNanos`.
    static let fitsFraction = 0.7
    static let fitsForNanos: UInt64 = 2_000_000_000
    /// A window with fewer bonded bytes than this says nothing about shares (an idle office).
    static let minimumWindowBytes: UInt64 = 64_000

    private(set) var tracks: [String: Track] = [:]
    private var lastTick: UInt64?
    private var ticks: UInt64 = 0

    /// Advances by one tick and returns the names of the uplinks to mark backup.
    mutating func tick(_ uplinks: [Input], now: UInt64) -> Set<String> {
        let elapsed = lastTick.map { now &- $0 } ?? Self.tickNanos
        lastTick = now
        ticks &+= 1
        let seconds = Double(max(elapsed, 1)) / 1e9
        let secondBoundary = ticks % (1_000_000_000 / Self.tickNanos) == 0
        // Forget uplinks a reload removed.
        tracks = tracks.filter { name, _ in uplinks.contains { $0.name == name } }

        var rates: [String: Double] = [:]
        for u in uplinks {
            var t = tracks[u.name] ?? Track()
            // A counter that went backwards is a device that was re-created: start over from it.
            let delta = t.lastBytes.map { u.bytes >= $0 ? u.bytes - $0 : 0 } ?? 0
            t.lastBytes = u.bytes
            t.deltas.append(delta)
            if t.deltas.count > Self.windowTicks { t.deltas.removeFirst(t.deltas.count - Self.windowTicks) }
            rates[u.name] = Double(delta) / seconds
            if u.up, let rtt = u.rttNanos { t.rttMinimumThisSecond = min(t.rttMinimumThisSecond ?? rtt, rtt) }
            if !u.up {
                // A path that comes back may be another path: its round trip is learned anew.
                t.rttMinima = []
                t.rttMinimumThisSecond = nil
            } else if secondBoundary, let m = t.rttMinimumThisSecond {
                t.rttMinima.append(m)
                if t.rttMinima.count > Self.rttMinimumSeconds { t.rttMinima.removeFirst() }
                t.rttMinimumThisSecond = nil
            }
            tracks[u.name] = t
        }

        let bonded = uplinks.filter { $0.role != .off && $0.role != .backup }
        let actives = bonded.filter { $0.role == .active && $0.up }
        let activeRate = actives.reduce(0.0) { $0 + (rates[$1.name] ?? 0) }
        let totalRate = bonded.reduce(0.0) { $0 + (rates[$1.name] ?? 0) }
        let saturated = !actives.isEmpty && actives.allSatisfy { self.saturated($0, rate: rates[$0.name] ?? 0) }

        var held: Set<String> = []
        for u in uplinks {
            guard var t = tracks[u.name] else { continue }
            if u.role == .overflow {
                stepOverflow(
                    &t, actives: actives.count, saturated: saturated, activeRate: activeRate, totalRate: totalRate,
                    now: now)
                if t.overflow == .standby { held.insert(u.name) }
            }
            t.capped = overShare(u, t, others: bonded.filter { $0.name != u.name && $0.up })
            if t.capped { held.insert(u.name) }
            tracks[u.name] = t
        }
        return held
    }

    /// The overflow uplink's state machine: standby → carrying when every active uplink is
    /// saturated (or none is up); carrying → standby when an active is up again and, after the
    /// minimum time, all bonded traffic has fitted within the actives' capacity for a while.
    private func stepOverflow(
        _ t: inout Track, actives: Int, saturated: Bool, activeRate: Double, totalRate: Double, now: UInt64
    ) {
        if saturated { t.capacity = max(t.capacity, activeRate) }
        switch t.overflow {
        case .standby:
            guard actives == 0 || saturated else { return }
            t.overflow = .carrying
            t.fitsSince = nil
            if saturated {
                t.overflowSince = now
                t.capacity = activeRate
            } else {
                // Standing in for actives that are down is not a burst to ride out: it may stand by
                // again as soon as they are back and have room.
                t.overflowSince = now &- Self.minimumCarryNanos
                t.capacity = 0
            }
        case .carrying:
            guard actives > 0, !saturated, now &- t.overflowSince >= Self.minimumCarryNanos else {
                t.fitsSince = nil
                return
            }
            // With no capacity measured (it stood in for actives that were down), actives that
            // are not saturated have room by definition.
            guard t.capacity == 0 || totalRate < t.capacity * Self.fitsFraction else {
                t.fitsSince = nil
                return
            }
            let since = t.fitsSince ?? now
            t.fitsSince = since
            if now &- since >= Self.fitsForNanos {
                t.overflow = .standby
                t.fitsSince = nil
            }
        }
    }

    /// Whether an up active uplink is busy and its round trip shows a queue.
    private func saturated(_ u: Input, rate: Double) -> Bool {
        guard let rtt = u.rttNanos, rate >= Self.busyBytesPerSecond, let floor = rttFloor(u.name) else { return false }
        return rtt >= floor &+ Self.saturationRTTNanos
    }

    /// The smallest round trip of the uplink over the last two minutes, the current second included.
    func rttFloor(_ name: String) -> UInt64? {
        guard let t = tracks[name] else { return nil }
        let all = t.rttMinima + (t.rttMinimumThisSecond.map { [$0] } ?? [])
        return all.min()
    }

    /// Whether a capped uplink has carried more than its share over the window, while another
    /// uplink is up to carry the rest. With none, the cap does not apply: a share limits what an
    /// uplink carries next to the others, it does not cut the office off.
    private func overShare(_ u: Input, _ t: Track, others: [Input]) -> Bool {
        guard let cap = u.share, cap < 100, !others.isEmpty else { return false }
        guard let share = share(u.name) else { return false }
        return share > Double(cap)
    }

    /// The uplink's part of all uplinks' bytes over the window, in percent; nil while too few
    /// bytes went by to tell.
    func share(_ name: String) -> Double? {
        guard let mine = tracks[name]?.deltas.reduce(0, +) else { return nil }
        let total = tracks.values.reduce(UInt64(0)) { $0 + $1.deltas.reduce(0, +) }
        guard total >= Self.minimumWindowBytes else { return nil }
        return Double(mine) * 100 / Double(total)
    }

    /// The share cap in force: the lower of the uplink's own `share` and its class's; nil is
    /// none. Either can only lower it: the installer's file and the operator's plan are both caps,
    /// and an uplink capped by one must not be lifted by the other.
    static func cap(own: UInt8?, fromClass: UInt8?) -> UInt8? {
        let cap = min(own ?? 100, fromClass ?? 100)
        return cap < 100 ? cap : nil
    }

    /// An overflow uplink's state; nil for other roles or before the first tick.
    func overflow(_ name: String) -> OverflowState? { tracks[name]?.overflow }
}
