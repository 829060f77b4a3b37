import BraidConfig
import BraidCore
import BraidDataPlane
import BraidWire
import Logging

/// The operator's rules by service class, as the control channel pushes them: replaced whole by a
/// reload (on the control thread), read by each control channel when it starts and when told the
/// rules changed (on the control server's event loop).
final class OperatorRuleSets: @unchecked Sendable {
    private let lock = Mutex()
    private var byClass: [String: [ControlMessage.OperatorRule]] = [:]

    init(_ config: ConcentratorConfig, logger: Logger) {
        replace(config, logger: logger)
    }

    /// The rules of `serviceClass`, in file order; empty for a class without any.
    func rules(of serviceClass: String) -> [ControlMessage.OperatorRule] {
        lock.withLock { byClass[serviceClass] ?? [] }
    }

    /// Takes the rules of a configuration that passed `braid check`. A class whose set the
    /// control message cannot carry (only if the check and the codec disagree) pushes none and
    /// says so, rather than failing the sessions of that class.
    func replace(_ config: ConcentratorConfig, logger: Logger) {
        var sets: [String: [ControlMessage.OperatorRule]] = [:]
        for r in config.rules { sets[r.serviceClass, default: []].append(Self.wire(r.rule)) }
        for (name, rules) in sets {
            do {
                try ControlMessage.check(rules)
            } catch {
                logger.error(
                    "operator rules of a class not pushed", metadata: ["class": "\(name)", "error": "\(error)"])
                sets[name] = nil
            }
        }
        lock.withLock { byClass = sets }
    }

    /// A concentrator `config rule` as the control message carries it (it names no uplink).
    static func wire(_ rule: TrafficRule) -> ControlMessage.OperatorRule {
        let action: ControlMessage.OperatorRule.Action =
            switch rule.action {
            case .bond: .bond
            case .direct: .direct
            case .block: .block
            }
        let proto: ControlMessage.OperatorRule.Proto =
            switch rule.proto {
            case .tcp: .tcp
            case .udp: .udp
            case .any: .any
            }
        return ControlMessage.OperatorRule(
            name: rule.name, action: action, proto: proto, destinations: rule.destinations, sources: rule.sources,
            destinationPorts: rule.destinationPorts, sourceMACs: rule.sourceMACs)
    }
}

/// Sent down every open control channel's pipeline when a reload or the store changed classes,
/// subscribers or rules: each channel looks up its subscriber's class again and pushes what changed.
struct OperatorRulesChanged {}
