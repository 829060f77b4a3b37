import BraidCore
import NIOConcurrencyHelpers

/// What the simulated fleet counts, from every gateway's event loop: who holds a session key,
/// attempts and failures by the step they failed at, and the two moments worth reporting — all
/// gateways granted for the first time (`up`), and all granted again after they lost their
/// channels together (`restored`, a concentrator restart). Emits each as a JSON line.
final class FleetTally: @unchecked Sendable {
    /// How far a control connection got before it ended.
    enum Stage: String, CaseIterable {
        /// The TCP/MPTCP connect failed (nothing listening: the concentrator is down).
        case connect
        /// Connected, but the TLS handshake did not finish (reset at accept over a handshake
        /// limit, refused certificate, handshake timeout).
        case tls
        /// TLS done, but the channel ended before a key was granted (subscriber not served).
        case grant
        /// A granted channel ended (the concentrator went away, or closed it).
        case channel
    }

    /// A reconnect storm: from the first granted channel lost while all were up, until all are
    /// granted again.
    private struct Storm {
        var began: UInt64
        var firstGrant: UInt64?
        var backAfter: [Double] = []
        var attemptsBefore: Int
        var failuresBefore: [Stage: Int]
    }

    private let lock = NIOLock()
    private let count: Int
    private let started = monotonicNanos()
    private var up: [Bool]
    private var upCount = 0
    private var firstOutcome: [Bool]
    private var allUpOnce = false
    private var storm: Storm?
    private var attempts = 0
    private var failures: [Stage: Int] = [:]
    private var lastError: [Stage: String] = [:]
    /// Called (outside the lock) when a gateway's first attempt has an outcome, granted or not:
    /// the initial connects are paced by it, `--in-flight` at a time.
    var onFirstOutcome: (() -> Void)?

    init(count: Int) {
        self.count = count
        up = Array(repeating: false, count: count)
        firstOutcome = Array(repeating: false, count: count)
    }

    func attempted() { lock.withLock { attempts += 1 } }

    func granted(_ index: Int) {
        var events: [JSONObject] = []
        let first = lock.withLock { () -> Bool in
            let now = monotonicNanos()
            if !up[index] {
                up[index] = true
                upCount += 1
                if var s = storm {
                    s.firstGrant = s.firstGrant ?? now
                    s.backAfter.append(MonotonicClock.seconds(from: s.began, to: now))
                    storm = s
                }
            }
            if upCount == count && !allUpOnce {
                allUpOnce = true
                let seconds = MonotonicClock.seconds(from: started, to: now)
                var event: JSONObject = [
                    "event": .string("up"), "gateways": .int(count), "seconds": .rounded(seconds),
                    "handshakes_per_second": .rounded(Double(count) / seconds, places: 1),
                    "attempts": .int(attempts),
                ]
                addFailures(&event, since: [:])
                events.append(event)
            } else if upCount == count, let s = storm {
                events.append(restored(s, now: now))
                storm = nil
            }
            return markFirstOutcome(index)
        }
        events.forEach { $0.emit() }
        if first { onFirstOutcome?() }
    }

    func lost(_ index: Int, stage: Stage, why: String) {
        let first = lock.withLock { () -> Bool in
            failures[stage, default: 0] += 1
            lastError[stage] = why
            if up[index] {
                up[index] = false
                if upCount == count && allUpOnce && storm == nil {
                    storm = Storm(began: monotonicNanos(), attemptsBefore: attempts, failuresBefore: failures)
                    // This loss is the storm's own first failure.
                    storm!.failuresBefore[stage, default: 0] -= 1
                }
                upCount -= 1
            }
            return markFirstOutcome(index)
        }
        if first { onFirstOutcome?() }
    }

    /// Gateways holding a key now.
    var granted: Int { lock.withLock { upCount } }

    /// Attempts and failures since start, for the final line.
    func totals() -> JSONObject {
        lock.withLock {
            var event: JSONObject = ["attempts": .int(attempts), "granted": .int(upCount)]
            addFailures(&event, since: [:])
            return event
        }
    }

    private func markFirstOutcome(_ index: Int) -> Bool {
        guard !firstOutcome[index] else { return false }
        firstOutcome[index] = true
        return true
    }

    private func restored(_ s: Storm, now: UInt64) -> JSONObject {
        let back = s.backAfter.sorted()
        let seconds = MonotonicClock.seconds(from: s.began, to: now)
        let granting = s.firstGrant.map { MonotonicClock.seconds(from: $0, to: now) } ?? 0
        var event: JSONObject = [
            "event": .string("restored"), "gateways": .int(count), "seconds": .rounded(seconds),
            "p50": .rounded(percentile(back, 0.50)), "p90": .rounded(percentile(back, 0.90)),
            "p99": .rounded(percentile(back, 0.99)),
            // From the first key granted again to the last: the rate the concentrator kept up
            // while every gateway wanted it at once.
            "first_grant": .rounded(seconds - granting),
            "handshakes_per_second": .rounded(granting > 0 ? Double(back.count) / granting : 0, places: 1),
            "attempts": .int(attempts - s.attemptsBefore),
        ]
        addFailures(&event, since: s.failuresBefore)
        return event
    }

    private func addFailures(_ event: inout JSONObject, since before: [Stage: Int]) {
        var total = 0
        for stage in Stage.allCases {
            let n = failures[stage, default: 0] - before[stage, default: 0]
            total += n
            event["failed_\(stage.rawValue)"] = .int(n)
            if n > 0, let why = lastError[stage] { event["last_\(stage.rawValue)_error"] = .string(why) }
        }
        event["failures"] = .int(total)
    }
}

/// The value below which `fraction` of the sorted `values` lie (nearest rank).
func percentile(_ sorted: [Double], _ fraction: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    let rank = Int((fraction * Double(sorted.count)).rounded(.up))
    return sorted[min(max(rank, 1), sorted.count) - 1]
}
