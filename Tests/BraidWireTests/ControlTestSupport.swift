import BraidCore
@testable import BraidWire

/// Repeatable random numbers (SplitMix64) for backoff and key ids.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Returns the given values in turn, then repeats the last.
struct ScriptedRandom: RandomNumberGenerator {
    var values: [UInt64]

    mutating func next() -> UInt64 {
        values.count > 1 ? values.removeFirst() : values[0]
    }
}

/// Key ids 1, 2, 3, ... with key bytes that name their id.
struct CountingKeySource: SessionKeySource {
    var next: UInt32 = 1

    mutating func nextKey() -> (id: UInt32, key: [UInt8]) {
        defer { next += 1 }
        return (next, [UInt8](repeating: UInt8(truncatingIfNeeded: next), count: 32))
    }
}

/// A gateway and a concentrator session joined by an in-memory channel, driven by a hand clock.
/// It carries out their actions the way the daemons will: the concentrator's keys go into a
/// `SessionKeyRing`, the gateway's into a one-key slot.
struct ControlLink {
    var gateway: GatewayControlSession
    var concentrator: ConcentratorControlSession
    var now: UInt64 = 1_790_000_000_000
    var ring = SessionKeyRing()
    var gatewayKey: (id: UInt32, key: [UInt8], notAfter: UInt64)?
    var gatewayClasses: [ControlMessage.ClassInfo] = []
    var gatewayAddresses: [[IPAddress]] = []
    var gatewayShares: [[UplinkShare]] = []
    var gatewayRules: [[ControlMessage.OperatorRule]] = []
    var gatewayClosed: ControlCloseReason?
    var concentratorClosed: ControlCloseReason?
    var gatewayRetired: [UInt32] = []
    var concentratorRetired: [UInt32] = []
    /// While true, bytes written by either end are lost (a dead path).
    var severed = false
    private var toGateway: [UInt8] = []
    private var toConcentrator: [UInt8] = []

    init(gateway: GatewayControlSession.Configuration, concentrator: ConcentratorControlSession.Configuration) {
        self.gateway = GatewayControlSession(configuration: gateway)
        self.concentrator = ConcentratorControlSession(configuration: concentrator, keys: CountingKeySource())
    }

    var start: UInt64 { 1_790_000_000_000 }

    mutating func connect() {
        concentratorDo(concentrator.start(nowMillis: now))
        gatewayDo(gateway.start(nowMillis: now))
        pump()
    }

    mutating func gatewayDo(_ actions: [ControlAction]) {
        for action in actions {
            precondition(gatewayClosed == nil, "gateway action \(action) after close")
            switch action {
            case .send(let bytes): if !severed { toConcentrator += bytes }
            case .installKey(let id, let key, let notAfter): gatewayKey = (id, key, notAfter)
            case .retireKey(let id):
                gatewayRetired.append(id)
                if gatewayKey?.id == id { gatewayKey = nil }
            case .applyClass(let info): gatewayClasses.append(info)
            case .learnAddresses(let list): gatewayAddresses.append(list)
            case .applyUplinkShares(let list): gatewayShares.append(list)
            case .applyOperatorRules(let rules): gatewayRules.append(rules)
            case .close(let reason): gatewayClosed = reason
            }
        }
    }

    mutating func concentratorDo(_ actions: [ControlAction]) {
        for action in actions {
            precondition(concentratorClosed == nil, "concentrator action \(action) after close")
            switch action {
            case .send(let bytes): if !severed { toGateway += bytes }
            case .installKey(let id, let key, let notAfter):
                let evicted = try! ring.install(id: id, key: key, notAfterMillis: notAfter, owner: "gw-1")
                precondition(evicted.isEmpty, "session left more than two keys: evicted \(evicted)")
            case .retireKey(let id):
                concentratorRetired.append(id)
                ring.retire(id: id)
            case .applyClass: preconditionFailure("a concentrator applies no class")
            case .learnAddresses: preconditionFailure("a concentrator learns no addresses")
            case .applyUplinkShares: preconditionFailure("a concentrator applies no uplink shares")
            case .applyOperatorRules: preconditionFailure("a concentrator applies no operator rules")
            case .close(let reason): concentratorClosed = reason
            }
        }
    }

    /// Delivers bytes both ways until neither end has anything more to say.
    mutating func pump() {
        while !toGateway.isEmpty || !toConcentrator.isEmpty {
            let g = toGateway
            toGateway = []
            if gatewayClosed == nil { gatewayDo(gateway.receive(g, nowMillis: now)) }
            let c = toConcentrator
            toConcentrator = []
            if concentratorClosed == nil { concentratorDo(concentrator.receive(c, nowMillis: now)) }
        }
    }

    /// Moves the clock to `time` in steps of `step` ms, ticking both ends and delivering, and
    /// calls `check` after every step.
    mutating func run(until time: UInt64, step: UInt64 = 1000) {
        run(until: time, step: step) { _ in }
    }

    mutating func run(until time: UInt64, step: UInt64 = 1000, check: (inout ControlLink) throws -> Void) rethrows {
        while now < time {
            now = min(now + step, time)
            if gatewayClosed == nil { gatewayDo(gateway.tick(nowMillis: now)) }
            if concentratorClosed == nil { concentratorDo(concentrator.tick(nowMillis: now)) }
            pump()
            try check(&self)
        }
    }

    /// Delivers raw bytes to one end, bypassing the other (a misbehaving peer).
    mutating func injectToGateway(_ bytes: [UInt8]) {
        gatewayDo(gateway.receive(bytes, nowMillis: now))
        pump()
    }

    mutating func injectToConcentrator(_ bytes: [UInt8]) {
        concentratorDo(concentrator.receive(bytes, nowMillis: now))
        pump()
    }
}
