/// What the probes of one uplink say, as a state machine without I/O or clock: the caller feeds
/// sends, replies and ticks with monotonic nanoseconds and acts on the transitions returned.
///
/// Down: no reply for `downAfter` while probes were being sent (a silent outage: carrier up, no
/// traffic). Up again: `upAfter` replies in a row. Loss and RTT are kept over the last
/// `window` probes for `braid status`.
struct UplinkHealth {
    enum State: String {
        case up, down
    }

    enum Transition: Equatable {
        case wentDown(reason: String)
        case cameUp
    }

    private(set) var downAfter: UInt64
    private(set) var upAfter: Int
    private(set) var state: State
    private(set) var since: UInt64
    private var lastReply: UInt64
    /// When each probe of the current run of answers was sent, oldest first: answers to probes
    /// sent after the newest lost one. A probe settles as lost only `downAfter` after it was sent,
    /// so it is judged by when it was sent, not when it settled: the probes sent into an outage,
    /// settling one by one while the path already answers again, are older than those answers and
    /// do not break their run. (Counting "in a row" by settling order brought an uplink back
    /// `downAfter` later than `upAfter` answers take: 1.2 s after an outage instead of 0.4 s, seen
    /// in the failover benchmark.)
    private var run: [UInt64] = []
    /// Sequence numbers sent and not yet answered, with their send times (oldest first).
    private var outstanding: [(seq: UInt16, at: UInt64)] = []
    private var results: [Bool] = []  // answered?, for the last `window` settled probes
    private static let window = 50
    private(set) var rttNanos: UInt64?
    private(set) var smoothedRTTNanos: UInt64?

    /// Starts `up`: uplinks carry traffic from the first second, and probes demote a dead one
    /// within `downAfter`.
    init(downAfterNanos: UInt64, upAfter: Int, now: UInt64) {
        self.downAfter = downAfterNanos
        self.upAfter = upAfter
        state = .up
        since = now
        lastReply = now
    }

    /// New limits from a reload; what the probes said so far is kept and judged by them from now on.
    mutating func retime(downAfterNanos: UInt64, upAfter: Int) {
        downAfter = downAfterNanos
        self.upAfter = upAfter
    }

    mutating func sent(seq: UInt16, at now: UInt64) {
        outstanding.append((seq, now))
        if outstanding.count > 256 { outstanding.removeFirst(outstanding.count - 256) }
    }

    /// A reply to `seq` arrived.
    mutating func replied(seq: UInt16, rttNanos rtt: UInt64, at now: UInt64) -> Transition? {
        guard let i = outstanding.firstIndex(where: { $0.seq == seq }) else { return nil }  // late or duplicate
        run.append(outstanding[i].at)
        if run.count > upAfter { run.removeFirst(run.count - upAfter) }
        outstanding.remove(at: i)
        settle(true)
        lastReply = now
        rttNanos = rtt
        smoothedRTTNanos = smoothedRTTNanos.map { ($0 * 7 + rtt) / 8 } ?? rtt
        if state == .down && run.count >= upAfter {
            state = .up
            since = now
            return .cameUp
        }
        return nil
    }

    /// Called at each probe interval: settles probes older than `downAfter` as lost and decides
    /// whether the uplink is down.
    mutating func tick(now: UInt64) -> Transition? {
        while let first = outstanding.first, now &- first.at > downAfter {
            outstanding.removeFirst()
            settle(false)
            run.removeAll { $0 < first.at }
        }
        if state == .up && now &- max(lastReply, since) > downAfter {
            state = .down
            since = now
            run = []
            return .wentDown(reason: "no probe answered for \(downAfter / 1_000_000) ms")
        }
        return nil
    }

    /// Forces the state (carrier lost, address gone): probes cannot run, nothing to wait for.
    mutating func force(down reason: String, now: UInt64) -> Transition? {
        outstanding = []
        run = []
        guard state == .up else { return nil }
        state = .down
        since = now
        return .wentDown(reason: reason)
    }

    /// Share of settled probes lost over the window, 0 to 1; nil before any probe settled.
    var loss: Double? {
        guard !results.isEmpty else { return nil }
        return Double(results.filter { !$0 }.count) / Double(results.count)
    }

    private mutating func settle(_ answered: Bool) {
        results.append(answered)
        if results.count > Self.window { results.removeFirst(results.count - Self.window) }
    }
}
