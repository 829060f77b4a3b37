import BraidCore

/// The control loop's side of EgressRouting: what the probes say about each uplink, handed to the
/// policy at each probe tick and each change of health, so non-relayed traffic moves within a
/// probe interval of the uplink being declared down.
extension UplinkSupervisor {
    /// The uplinks as EgressPolicy sees them, in configuration order.
    func egressCandidates() -> [EgressPolicy.Candidate] {
        manager.uplinks.compactMap { u in
            guard u.config.role != .off, let w = watches[u.name] else { return nil }
            let families = Set(u.addresses.map { $0.address.isIPv4 ? EgressPolicy.Family.ipv4 : .ipv6 })
            return EgressPolicy.Candidate(
                name: u.name, backup: u.config.role == .backup || u.config.role == .overflow, families: u.usable ? families : [],
                healthy: u.usable && w.health.state == .up, since: w.health.since)
        }
    }

    /// Moves non-relayed traffic if the policy says so (cheap when it does not).
    func steerEgress() {
        guard let egress else { return }
        let tables = Dictionary(uniqueKeysWithValues: manager.uplinks.map { ($0.name, $0.table) })
        egress.steer(egressCandidates(), tables: tables, now: monotonicNanos())
    }
}
