import BraidConfig

/// A reload's changes to the uplinks, applied on the control reactor thread like every other
/// change of uplink state, so probes, netlink events and the path manager never see half of one.
extension UplinkSupervisor {
    /// Applies `diff` (from the running configuration to `new`). Uplinks the diff does not name are
    /// not touched: their routes, rules, probes and subflows stay as they are.
    func reconfigure(to new: GatewayConfig, _ diff: GatewayConfigDiff) {
        config = new
        let tables = new.uplinkTables
        if let m = diff.maxSubflows { planner.maxSubflows = Int(m.new) + 1 }
        if let t = diff.probeTimers {
            // The probe tick reads the interval from `config` each time it rearms.
            for name in watches.keys {
                watches[name]?.health.retime(
                    downAfterNanos: UInt64(t.new.downAfter) * 1_000_000, upAfter: Int(t.new.upAfter))
            }
        }

        // Removed uplinks leave the paths first, so the planner withdraws their subflows from every
        // connection while their routes still carry the withdrawal; then their route and rules go.
        for u in diff.uplinksRemoved {
            watches[u.name]?.probe?.close()
            watches[u.name] = nil
        }
        if !diff.uplinksRemoved.isEmpty { replan() }
        for u in diff.uplinksRemoved { manager.remove(u.name) }

        // A changed uplink keeps its identity. On a new device it is a new link: its probes start
        // over, and its old address, gone from the paths, has its subflows withdrawn below. A new
        // table or next hop is only a route and rule moved: probes and subflows stay.
        for c in diff.uplinksChanged {
            manager.reconfigure(c.name, to: c.new, table: c.newTable)
            if c.deviceChanged {
                watches[c.name]?.probe?.close()
                watches[c.name] = makeWatch()
            }
        }
        for u in diff.uplinksAdded {
            manager.add(u, table: tables[u.name] ?? new.tableBase)
            watches[u.name] = makeWatch()
        }
        manager.order(new.uplinks.map(\.name))
        // Before the updates below: a changed uplink comes back with its configured role, and an
        // uplink over its (new) cap must not carry traffic in that role for a moment.
        let capsChanged = reconfigureQuotas(new)

        // Installs what changed and added uplinks need, then gives every running connection a
        // subflow on each new healthy uplink (update replans).
        let touched = diff.uplinksChanged.map(\.name) + diff.uplinksAdded.map(\.name)
        for name in touched + capsChanged.filter({ !touched.contains($0) }) { update(name) }
        publishSource()
        if let h = diff.holddown { egress?.policy.holddownNanos = UInt64(h.new * 1e9) }
        // Traffic leaves removed uplinks (their flows are deleted by their mark, then the mark is free).
        steerEgress()
        for u in diff.uplinksRemoved { egress?.release(u.name) }
        replan()
    }
}
