import BraidConfig
import BraidStatus

/// The control loop's side of the data caps: every 250 ms the QuotaKeeper counts each capped
/// device; an uplink that reaches its cap turns `quota_action` (backup: MPTCP backup priority on
/// its subflows, so running transfers move to the other uplinks without a break; off: its
/// subflows and routes go) until the period ends or a reload raises the cap.
extension UplinkSupervisor {
    /// Reads the saved counts and gives uplinks over their cap the cap's role; before the first
    /// pass, so the kernel never sees them in their configured role.
    func startQuotas() throws {
        let keeper = try QuotaKeeper(stateDir: config.stateDir, logger: logger)
        quotas = keeper
        keeper.configure(config.uplinks, stateDir: config.stateDir)
        // The first reading adds what the device carried since the last write (a kill, a stop).
        _ = keeper.tick(devices: quotaDevices())
        for (name, m) in keeper.meters where m.overCap { logReached(name, "at start: this period's count") }
        applyQuotaRoles()
        scheduleQuotaTick()
    }

    /// A reload's caps; returns the uplinks whose role the caps changed (the caller updates them).
    func reconfigureQuotas(_ new: GatewayConfig) -> [String] {
        guard let quotas else { return [] }
        for name in quotas.configure(new.uplinks, stateDir: new.stateDir) {
            if quotas.meters[name]?.overCap == true {
                logReached(name, "reload")
            } else {
                logger.notice(
                    "uplink back in its role: under its data cap", metadata: ["uplink": "\(name)", "why": "reload"])
            }
        }
        return applyQuotaRoles()
    }

    private func quotaDevices() -> [String: String] {
        Dictionary(config.uplinks.map { ($0.name, $0.device) }, uniquingKeysWith: { a, _ in a })
    }

    /// Four times a second: one netlink question per capped device, and a 100 Mbit/s link passes
    /// its cap by about 3 MB before it turns (the file is still written at most once a minute).
    private func scheduleQuotaTick() {
        reactor.schedule(afterNanos: 250_000_000) { [weak self] in
            guard let self, !self.stopped else { return }
            self.quotaTick()
            self.scheduleQuotaTick()
        }
    }

    private func quotaTick() {
        guard let quotas, !quotas.meters.isEmpty else { return }
        for (name, change) in quotas.tick(devices: quotaDevices()) {
            switch change {
            case .reached: logReached(name, "counted")
            case .cleared:
                logger.notice("uplink back in its role: a new data-cap period began", metadata: ["uplink": "\(name)"])
            }
        }
        let moved = applyQuotaRoles()
        for name in moved { update(name) }
        if !moved.isEmpty {
            publishSource()
            steerEgress()
            onTransition?()
        }
    }

    /// Gives every uplink the role its cap says (QuotaMeter.effectiveRole); returns those changed.
    @discardableResult
    private func applyQuotaRoles() -> [String] {
        var moved: [String] = []
        for u in config.uplinks {
            let over = quotas?.meters[u.name]?.overCap ?? false
            let role = QuotaMeter.effectiveRole(configured: u.role, quota: u.quota, overCap: over)
            guard let current = manager[u.name]?.config.role, current != role else { continue }
            manager.setRole(u.name, role)
            moved.append(u.name)
        }
        return moved
    }

    private func logReached(_ name: String, _ why: String) {
        guard let m = quotas?.meters[name], let q = config.uplinks.first(where: { $0.name == name })?.quota else {
            return
        }
        logger.notice(
            "uplink reached its data cap",
            metadata: [
                "uplink": "\(name)", "used": "\(m.used)", "cap": "\(m.cap)", "now": "\(q.action)",
                "until": "\(Self.localDate(m.periodEnd, m.period.utcOffset))", "why": "\(why)",
            ])
    }

    /// The uplink's cap in the status document; nil without one.
    func quotaStatus(_ name: String) -> UplinkQuotaStatus? {
        guard let m = quotas?.meters[name], let q = config.uplinks.first(where: { $0.name == name })?.quota else {
            return nil
        }
        return UplinkQuotaStatus(
            used: m.used, cap: m.cap, period: q.period.rawValue, resetsAt: m.periodEnd,
            resetsOn: Self.localDate(m.periodEnd, m.period.utcOffset), state: m.overCap ? "reached" : "ok",
            action: q.action.rawValue)
    }

    /// `2026-12-01`: the local date of a moment.
    static func localDate(_ unix: Int64, _ utcOffset: Int64) -> String {
        let local = unix + utcOffset
        let (y, m, d) = QuotaPeriod.civil(local >= 0 ? local / 86_400 : (local - 86_399) / 86_400)
        func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(y)-\(two(m))-\(two(d))"
    }
}
