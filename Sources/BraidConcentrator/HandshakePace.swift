/// How many TLS handshakes the control port lets be in flight, from how fast they have been
/// finishing: no more than finish within `targetMillis` at the rate of the last few seconds
/// (Little's law: time in flight = handshakes in flight / rate), at least `floor`, at most
/// `ceiling` (`max_control_handshakes`). Policy without a clock: the caller passes the time.
///
/// Why: the server computes the handshakes in flight in turn, so each waits about in-flight / rate.
/// A fixed limit of 256 on a thread that finishes 25 a second (a busy machine, debug build) makes
/// every handshake wait about 10 s, the handshake timeout: most time out with their work done in
/// vain, and the gateways come back for more. With the limit at what finishes in half the
/// timeout, the admitted ones finish and the rest are refused at accept, which costs nothing.
///
/// With nothing finished in the last few seconds (at start, after a quiet spell, or under a flood
/// of handshakes that never finish) the limit is `ceiling`: nothing says the server is slow, and
/// the storm after a restart starts at once instead of being refused for a second (each refusal
/// doubles a gateway's backoff). Once handshakes finish, it is what the rate says, at least
/// `floor`, so a trickle of gateways beside a flood of stalled handshakes keeps `floor` slots,
/// which the per-source limit and the fair-share eviction share out.
struct HandshakePace {
    /// Handshakes finished are counted in buckets of this length...
    static let bucketMillis: UInt64 = 1000
    /// ...and the rate is taken over this many of them, the current one included.
    static let window = 5

    let ceiling: Int
    let floor: Int
    let targetMillis: UInt64
    /// Handshakes finished per bucket (`nowMillis / bucketMillis`), oldest first, at most `window`.
    private var recent: [(bucket: UInt64, finished: Int)] = []

    /// - Parameters:
    ///   - ceiling: `max_control_handshakes`.
    ///   - targetMillis: how long a handshake may wait for its turn (half the handshake timeout).
    ///   - floor: the limit however slowly handshakes finish (at most `ceiling`).
    init(ceiling: Int, targetMillis: UInt64, floor: Int = 64) {
        self.ceiling = ceiling
        self.floor = min(ceiling, floor)
        self.targetMillis = targetMillis
    }

    /// A handshake finished at `nowMillis`.
    mutating func finished(nowMillis: UInt64) {
        let bucket = nowMillis / Self.bucketMillis
        if let last = recent.last, last.bucket == bucket {
            recent[recent.count - 1].finished += 1
        } else {
            recent.append((bucket, 1))
            if recent.count > Self.window { recent.removeFirst(recent.count - Self.window) }
        }
    }

    /// The most handshakes in flight at `nowMillis`.
    func limit(nowMillis: UInt64) -> Int {
        let now = nowMillis / Self.bucketMillis
        let inWindow = recent.filter { $0.bucket + UInt64(Self.window) > now }
        guard let oldest = inWindow.first else { return ceiling }
        let finished = UInt64(inWindow.reduce(0) { $0 + $1.finished })
        // From the start of the oldest bucket counted to now; a second at least, so the first
        // handshakes of a storm do not pass for a rate of thousands.
        let span = max(nowMillis - min(nowMillis, oldest.bucket * Self.bucketMillis), Self.bucketMillis)
        let bound = finished * targetMillis / span
        return Int(min(UInt64(ceiling), max(UInt64(floor), bound)))
    }
}
