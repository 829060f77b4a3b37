/// A byte-rate limit shared by every relay of one subscriber in one direction, whichever reactor
/// runs them: relays take tokens before they read, and wait (their socket's data left in the
/// kernel, so TCP's flow control slows the sender) when there are none. Shaping, not dropping.
/// Time is passed in, so the arithmetic is testable with a hand clock.
public final class TokenBucket: @unchecked Sendable {
    /// The configured rate, bits per second.
    public let bitsPerSecond: UInt64
    /// Bytes per second.
    public let rate: UInt64
    /// Most tokens that can pile up: a relay idle for a while may send this much at once.
    public let burst: UInt64
    private let lock = Mutex()
    private var tokens: Double
    private var last: UInt64

    /// `bitsPerSecond` as the operator configures it (`rate_down`, `rate_up`). The burst is
    /// 20 ms of the rate, at least 16 KiB: small enough that a long transfer's average stays
    /// within a few percent of the rate, large enough for few timer wake-ups.
    public init(bitsPerSecond: UInt64, now: UInt64) {
        self.bitsPerSecond = bitsPerSecond
        rate = max(1, bitsPerSecond / 8)
        burst = max(16 * 1024, rate / 50)
        tokens = Double(burst)
        last = now
    }

    private func refill(_ now: UInt64) {
        if now > last {
            tokens = min(Double(burst), tokens + Double(now - last) * Double(rate) / 1e9)
            last = now
        }
    }

    /// Takes up to `max` tokens and returns how many were taken: none unless at least `least`
    /// are there, so a reader waits for a useful amount instead of spinning on a trickle (a
    /// fraction of a microsecond's worth per call, each a tiny segment on the wire).
    public func take(atLeast least: Int = 1, upTo max: Int, now: UInt64) -> Int {
        lock.withLock {
            refill(now)
            guard tokens >= Double(Swift.min(least, max)) else { return 0 }
            let n = Swift.min(max, Int(tokens))
            tokens -= Double(n)
            return n
        }
    }

    /// Gives back tokens taken but not used (a read that moved less than it was allowed).
    public func refund(_ n: Int) {
        guard n > 0 else { return }
        lock.withLock { tokens = min(Double(burst), tokens + Double(n)) }
    }

    /// Nanoseconds until `n` tokens (at most the burst) are there.
    public func nanosUntil(_ n: Int, now: UInt64) -> UInt64 {
        lock.withLock {
            refill(now)
            let missing = Double(min(UInt64(n), burst)) - tokens
            return missing <= 0 ? 0 : UInt64(missing * 1e9 / Double(rate)) + 1
        }
    }
}
