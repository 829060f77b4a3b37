import BraidConfig
import BraidCore

/// Which concentrator new sessions go to, among `list server` in order of preference: policy
/// without I/O or clock. The caller feeds what it saw (each control channel up or down, whether
/// the probes reach the concentrator in use, resolved and announced addresses) with monotonic
/// nanoseconds, and asks `decide(now:)` on a timer; a `Switch` returned is already applied here
/// and the caller moves the data path (probes, first subflows, session keys) to match.
///
/// A concentrator is healthy while its control channel is up and, when the probes found it
/// unreachable from every uplink, once that verdict has been disproved: by the channel coming up
/// again afterwards, or by the channel staying up for `confirmNanos` after it (its keepalive would
/// have taken it down by then, so pongs came back). Both signals are needed: a killed process
/// closes the channel at once while its host still answers the probes, and a silent one (a
/// blackhole) keeps a channel "up" until its keepalive expires, long after the probes noticed.
///
/// Away from a concentrator that is not healthy: at once, to the most preferred healthy one.
/// Back to a more preferred one: only once it has been healthy for `holddownNanos`, so a
/// flapping concentrator does not pull new sessions back and forth. With none healthy, new
/// sessions stay where they are (the most likely to come back, and no worse than the others).
struct ConcentratorChoice {
    /// A control channel's last known state.
    enum Channel: Equatable {
        /// Not judged yet (the first connection is under way).
        case unknown
        case up(since: UInt64)
        case down(since: UInt64, reason: String)
    }

    /// What is known of one concentrator.
    struct Server: Equatable {
        let host: ConcentratorHost
        var addresses: ConcentratorAddresses
        var channel: Channel = .unknown
        /// When the probes found it unreachable from every uplink, while in use; nil once they reach it.
        var unreachableSince: UInt64?
    }

    /// A change of the concentrator in use.
    struct Switch: Equatable {
        var from: ConcentratorHost?
        var to: ConcentratorHost
        var reason: String
    }

    /// How one concentrator stands, for status.
    enum Health: Equatable {
        case unknown
        case healthy(since: UInt64)
        case down(since: UInt64, reason: String)
    }

    private(set) var servers: [Server]
    /// Index in `servers` of the concentrator new sessions go to.
    private(set) var inUse = 0
    var holddownNanos: UInt64
    var confirmNanos: UInt64

    /// `hosts` in order of preference (not empty), with what each resolved to so far.
    init(
        hosts: [ConcentratorHost], resolved: [ConcentratorHost: [IPAddress]], holddownNanos: UInt64,
        confirmNanos: UInt64
    ) {
        precondition(!hosts.isEmpty, "no concentrator")
        servers = hosts.map { Server(host: $0, addresses: ConcentratorAddresses(configured: resolved[$0] ?? [])) }
        self.holddownNanos = holddownNanos
        self.confirmNanos = confirmNanos
    }

    /// The concentrator new sessions go to.
    var current: Server { servers[inUse] }

    private func index(_ host: ConcentratorHost) -> Int? { servers.firstIndex { $0.host == host } }

    // MARK: what the caller saw

    /// A control channel came up (its first grant) or went down.
    mutating func channel(_ host: ConcentratorHost, up: Bool, reason: String = "", now: UInt64) {
        guard let i = index(host) else { return }
        switch (servers[i].channel, up) {
        case (.up, true): return
        case (.down, false): return
        case (_, true): servers[i].channel = .up(since: now)
        case (_, false):
            servers[i].channel = .down(since: now, reason: reason.isEmpty ? "control channel down" : reason)
        }
    }

    /// What the probes say of the concentrator in use: true when some uplink reaches it, false
    /// when every uplink that could probe it is down, nil when there is nothing to judge by (no
    /// uplink with carrier and address: another concentrator would be no better).
    mutating func probes(reachable: Bool?, now: UInt64) {
        switch reachable {
        case true?: servers[inUse].unreachableSince = nil
        case false?: if servers[inUse].unreachableSince == nil { servers[inUse].unreachableSince = now }
        case nil: return
        }
    }

    /// New addresses for a name (DNS). Health is kept: it belongs to the concentrator, not to
    /// one of its addresses. Returns whether the concentrator in use changed address.
    @discardableResult
    mutating func resolved(_ host: ConcentratorHost, _ addresses: [IPAddress]) -> Bool {
        guard let i = index(host), servers[i].addresses.configured != addresses else { return false }
        servers[i].addresses.configured = addresses
        return i == inUse
    }

    /// Addresses a concentrator announced over its own control channel (each its own).
    @discardableResult
    mutating func announced(_ host: ConcentratorHost, _ addresses: [IPAddress]) -> Bool {
        guard let i = index(host), servers[i].addresses.announced != addresses else { return false }
        servers[i].addresses.announced = addresses
        return i == inUse
    }

    /// A reload's new list: what is known of concentrators that stay is kept, and so is the one in
    /// use when it stays (its sessions go on). When it is gone, the most preferred healthy one
    /// takes over at once, else the first.
    mutating func replace(
        hosts: [ConcentratorHost], resolved: [ConcentratorHost: [IPAddress]], now: UInt64
    ) -> Switch? {
        precondition(!hosts.isEmpty, "no concentrator")
        let old = current.host
        servers = hosts.map { host in
            servers.first { $0.host == host }
                ?? Server(host: host, addresses: ConcentratorAddresses(configured: resolved[host] ?? []))
        }
        if let i = index(old) {
            inUse = i
            return nil
        }
        inUse = servers.indices.first { healthySince(servers[$0], now: now) != nil } ?? 0
        return Switch(from: old, to: current.host, reason: "\(old) removed from the list")
    }

    // MARK: the decision

    /// Since when `s` has been healthy; nil when it is not.
    func healthySince(_ s: Server, now: UInt64) -> UInt64? {
        guard case .up(let since) = s.channel else { return nil }
        guard let verdict = s.unreachableSince else { return since }
        if since > verdict { return since }
        if now >= verdict &+ confirmNanos { return verdict &+ confirmNanos }
        return nil
    }

    func health(_ s: Server, now: UInt64) -> Health {
        if let since = healthySince(s, now: now) { return .healthy(since: since) }
        if let verdict = s.unreachableSince {
            return .down(since: verdict, reason: "probes unanswered on every uplink")
        }
        switch s.channel {
        case .unknown: return .unknown
        case .up(let since): return .down(since: since, reason: "unconfirmed since the probes failed")
        case .down(let since, let reason): return .down(since: since, reason: reason)
        }
    }

    /// Moves new sessions if the state calls for it; nil: they stay where they go now.
    mutating func decide(now: UInt64) -> Switch? {
        let s = current
        // Its first connection is still under way and nothing says it is dead: wait for a verdict
        // rather than start on a second choice and come back after the hold-down.
        if s.channel == .unknown && s.unreachableSince == nil { return nil }
        let currentHealthy = healthySince(s, now: now) != nil
        for (i, candidate) in servers.enumerated() {
            if i == inUse {
                if currentHealthy { return nil }
                continue
            }
            guard let since = healthySince(candidate, now: now) else { continue }
            // Only more preferred ones are looked at while the current one is healthy.
            if currentHealthy && now &- since < holddownNanos { continue }
            let reason =
                currentHealthy
                ? "\(candidate.host) preferred, healthy for \(fixed(Double(now &- since) / 1e9, 1)) s"
                : "\(s.host) \(Self.describe(health(s, now: now)))"
            inUse = i
            return Switch(from: s.host, to: candidate.host, reason: reason)
        }
        return nil
    }

    static func describe(_ h: Health) -> String {
        switch h {
        case .unknown: "not judged yet"
        case .healthy: "healthy"
        case .down(_, let reason): "down: \(reason)"
        }
    }
}
