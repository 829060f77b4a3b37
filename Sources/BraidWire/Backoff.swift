/// Reconnect delays: exponential growth with a cap and full jitter (each delay drawn uniformly
/// between 0 and the current ceiling), so that gateways cut off together by one outage do not
/// come back in lockstep. The random source is passed in; nothing here reads a clock.
public struct Backoff: Sendable {
    /// Ceiling of the first delay.
    public let baseMillis: UInt64
    /// The ceiling never grows beyond this.
    public let capMillis: UInt64
    /// Failed attempts since the last `reset()`.
    public private(set) var attempts: Int = 0

    public init(baseMillis: UInt64 = 500, capMillis: UInt64 = 60_000) {
        precondition(baseMillis > 0 && capMillis >= baseMillis, "backoff base \(baseMillis) ms, cap \(capMillis) ms")
        self.baseMillis = baseMillis
        self.capMillis = capMillis
    }

    /// The ceiling for the next delay: base · 2^attempts, at most the cap.
    public var ceilingMillis: UInt64 {
        // Shifting by 63 or more would overflow; by then the cap has long been reached.
        guard attempts < 63, baseMillis <= capMillis >> UInt64(attempts) else { return capMillis }
        return baseMillis << UInt64(attempts)
    }

    /// How long to wait before the next attempt, in [0, ceiling]; counts the attempt.
    public mutating func next<R: RandomNumberGenerator>(using random: inout R) -> UInt64 {
        let delay = UInt64.random(in: 0...ceilingMillis, using: &random)
        if attempts < Int.max { attempts += 1 }
        return delay
    }

    /// The gateway's control channel: the first retry within half a second, then doubling up to
    /// 30 s. One value, so `braid-lab fleet` storms a concentrator exactly as a fleet of gateways would.
    public static var controlChannel: Backoff { Backoff(baseMillis: 500, capMillis: 30_000) }

    /// Call once a session was established: the next failure starts from the base again.
    public mutating func reset() {
        attempts = 0
    }
}
