import BraidConfig
import BraidCore
import Logging

/// The control loop's side of SteeringController: every tick it reads the uplinks' byte counters
/// and probe round trips, and when the set of uplinks held back changes, the path manager sets
/// every running connection's subflows on them backup or active (MP_PRIO), so both ends follow.
extension UplinkSupervisor {
    /// The share cap of an uplink (see `SteeringController.cap`).
    func effectiveShare(_ u: UplinkConfig) -> UInt8? {
        SteeringController.cap(own: u.share, fromClass: classShares[u.name])
    }

    /// Takes the shares the concentrator pushed for this gateway's class (all of them, replacing
    /// the earlier ones); they apply at the next tick. Runs on the control reactor.
    func setClassShares(_ list: [UplinkShare]) {
        let new = Dictionary(list.map { ($0.uplink, $0.percent) }, uniquingKeysWith: { min($0, $1) })
        guard new != classShares else { return }
        classShares = new
        let unknown = list.map(\.uplink).filter { name in !manager.uplinks.contains { $0.name == name } }
        logger.notice(
            "uplink shares from the class",
            metadata: [
                "shares": "\(list.map(\.description).joined(separator: ","))",
                "unknown_uplinks": "\(unknown.joined(separator: ","))",
            ])
    }

    func scheduleSteeringTick() {
        reactor.schedule(afterNanos: SteeringController.tickNanos) { [weak self] in
            guard let self, !self.stopped else { return }
            self.steer()
            self.scheduleSteeringTick()
        }
    }

    /// One tick of the controller; replans every connection when what it holds back changed.
    func steer() {
        let inputs = manager.uplinks.compactMap { u -> SteeringController.Input? in
            guard u.config.role != .off, let w = watches[u.name] else { return nil }
            return SteeringController.Input(
                name: u.name, role: u.config.role, share: effectiveShare(u.config),
                up: u.usable && w.health.state == .up,
                bytes: Self.counter(u.config.device, "tx_bytes") &+ Self.counter(u.config.device, "rx_bytes"),
                rttNanos: w.health.smoothedRTTNanos)
        }
        let held = steering.tick(inputs, now: monotonicNanos())
        guard held != steeringHeld else { return }
        for name in held.subtracting(steeringHeld).sorted() { logTurn(name, held: true) }
        for name in steeringHeld.subtracting(held).sorted() { logTurn(name, held: false) }
        steeringHeld = held
        replan()
    }

    private func logTurn(_ name: String, held: Bool) {
        let why: String
        if steering.tracks[name]?.capped == true {
            why = "over its share"
        } else if manager[name]?.config.role == .overflow {
            why = held ? "the active uplinks have room" : "the active uplinks are saturated or down"
        } else {
            why = "back under its share"
        }
        // A share is held by turning the flag off and on every few seconds: worth a debug line;
        // an overflow uplink starting or stopping is worth an info line.
        logger.log(
            level: why.hasSuffix("share") ? .debug : .info,
            held ? "uplink held back from bonded traffic" : "uplink carries bonded traffic",
            metadata: [
                "uplink": "\(name)", "reason": "\(why)",
                "share": "\(steering.share(name).map { fixed($0, 1) } ?? "-")",
            ])
    }
}
