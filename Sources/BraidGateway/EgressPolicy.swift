/// Which uplink carries the traffic braid does not relay — LAN UDP and ICMP, and the box's own
/// traffic (its resolver, NTP) — for each address family. Policy without I/O or clock: the
/// control loop feeds it the uplinks as the probes see them and applies the moves it returns
/// (EgressRouting).
///
/// Relayed TCP survives an uplink failure inside MPTCP; everything else leaves by one route, so
/// that route must follow uplink health or the office loses DNS, QUIC and VoIP with the primary
/// uplink although braid saw it die. The best healthy uplink wins: active before backup, then
/// configuration order. Moving away from a dead uplink is immediate; moving back to a better one
/// waits until it has been up for `holddownNanos`, because each move re-maps every NAT flow
/// (a VoIP call or a game sees a new source address) and a flapping line would do that at each
/// flap.
struct EgressPolicy {
    enum Family: String, CaseIterable, Sendable {
        case ipv4, ipv6
    }

    /// One uplink as the control loop sees it now, in configuration order.
    struct Candidate: Equatable {
        var name: String
        var backup: Bool
        /// Families the uplink has an address of (and so a default route in its table).
        var families: Set<Family>
        /// Usable (carrier, address) and its probes answered.
        var healthy: Bool
        /// Monotonic nanoseconds of its last change of health.
        var since: UInt64
    }

    /// A change of the uplink that carries one family's non-relayed traffic. `from` is the
    /// uplink left (its NAT flows are forgotten so they re-map), nil at the first choice; `to` is
    /// nil when no uplink of the family is healthy (the main table's routes apply again).
    struct Move: Equatable, CustomStringConvertible {
        var family: Family
        var from: String?
        var to: String?

        var description: String { "\(family): \(from ?? "none") -> \(to ?? "none")" }
    }

    var holddownNanos: UInt64
    /// The uplink carrying each family now.
    private(set) var current: [Family: String] = [:]

    init(holddownNanos: UInt64) {
        self.holddownNanos = holddownNanos
    }

    /// The moves that bring each family onto its best uplink now; empty when nothing changes. An
    /// uplink a reload removed is simply absent from `candidates`: its families move away.
    mutating func decide(_ candidates: [Candidate], now: UInt64) -> [Move] {
        var moves: [Move] = []
        for family in Family.allCases {
            let choice = choose(family, candidates, now: now)
            let before = current[family]
            guard choice != before else { continue }
            current[family] = choice
            moves.append(Move(family: family, from: before, to: choice))
        }
        return moves
    }

    private func choose(_ family: Family, _ candidates: [Candidate], now: UInt64) -> String? {
        // Stable: active uplinks in configuration order, then backups in configuration order.
        let healthy = candidates.filter { $0.healthy && $0.families.contains(family) }
        let ranked = healthy.filter { !$0.backup } + healthy.filter(\.backup)
        let settled = { (c: Candidate) in now &- c.since >= holddownNanos }
        if let current = current[family], ranked.contains(where: { $0.name == current }) {
            // Still healthy: only a better uplink that has been up for the hold-down takes over.
            let better = ranked.prefix { $0.name != current }
            return better.first(where: settled)?.name ?? current
        }
        // The uplink carrying it died (or there was none): the best that has been up for the
        // hold-down, else the best that is up at all, since any uplink beats none.
        return (ranked.first(where: settled) ?? ranked.first)?.name
    }
}

/// The connection-tracking mark of the LAN flows each uplink NATs, so that the flows of an uplink
/// traffic moves away from can be deleted with one netlink request the kernel filters by mark.
/// Each uplink name gets a slot of its own for the daemon's lifetime (a reload that reorders the
/// uplinks does not re-label flows); the slot sits in `mask`, bits operators' own marks (mwan3
/// uses 0x3f00) leave alone.
struct EgressMarks {
    static let mask: UInt32 = 0x00ff_0000
    private(set) var slots: [String: UInt32] = [:]

    init(uplinks: [String]) {
        for name in uplinks { assign(name) }
    }

    /// The mark of `name`, giving it the lowest free slot when it has none (nil when all 255 are
    /// taken, which the configuration's uplink count never reaches).
    @discardableResult
    mutating func assign(_ name: String) -> UInt32? {
        if let slot = slots[name] { return slot << 16 }
        let used = Set(slots.values)
        guard let free = (1...UInt32(255)).first(where: { !used.contains($0) }) else { return nil }
        slots[name] = free
        return free << 16
    }

    mutating func release(_ name: String) { slots[name] = nil }

    func mark(_ name: String) -> UInt32? { slots[name].map { $0 << 16 } }
}
