import BraidCore
import BraidDataPlane
import BraidStatus
import BraidWire

/// The operator's rules on a running gateway: applied as they arrive (the operator's chain alone
/// is replaced), kept in a file for the next start, shown with their hits by `braid status`.
extension GatewayService {
    /// The set kept by the last run, applied at start before the control channel is up; none
    /// when there is no file or it cannot be read (said in the log: the channel brings them again).
    func keptOperatorRules() -> [ControlMessage.OperatorRule] {
        let file = OperatorRulesFile(statusSocket: config.statusSocket)
        do {
            guard let rules = try file.load() else { return [] }
            logger.notice(
                "operator rules kept from the last run applied",
                metadata: ["file": "\(file.path)", "rules": "\(rules.count)"])
            operatorRules = rules
            return rules
        } catch {
            logger.warning(
                "operator rules kept from the last run not applied",
                metadata: ["file": "\(file.path)", "error": "\(error)"])
            return []
        }
    }

    /// A set pushed by the concentrator: on the control reactor, like a reload. The chain is
    /// changed first and the file written after, so the file never holds a set that was refused.
    func applyOperatorRules(_ rules: [ControlMessage.OperatorRule]) {
        guard rules != operatorRules else { return }
        do {
            try interception?.setOperatorRules(OperatorRules.statements(rules))
        } catch {
            logger.error("operator rules refused by nftables; the previous ones stay", metadata: ["error": "\(error)"])
            return
        }
        operatorRules = rules
        logger.notice("operator rules applied", metadata: ["rules": "\(rules.map(\.name))"])
        let file = OperatorRulesFile(statusSocket: config.statusSocket)
        do {
            try file.save(rules)
        } catch {
            logger.warning(
                "operator rules not kept for the next start", metadata: ["file": "\(file.path)", "error": "\(error)"])
        }
    }
}

extension GatewayService {
    /// Every rule in force in evaluation order, with the hits its nftables counters saw; nil
    /// when the counters cannot be read (the document then has no rules rather than wrong ones).
    func ruleStatus() -> [RuleStatus]? {
        guard let interception else { return nil }
        let hits: (local: [Interception.RuleHits], operator: [Interception.RuleHits])
        do {
            hits = try interception.ruleHits()
        } catch {
            logger.debug("rule counters not read", metadata: ["error": "\(error)"])
            return nil
        }
        let row = { (name: String, origin: String, action: String, counted: [Interception.RuleHits]) in
            let h = counted.first { $0.name == name }
            return RuleStatus(name: name, origin: origin, action: action, hits: h?.packets ?? 0, bytes: h?.bytes ?? 0)
        }
        return config.rules.map { row($0.name, "local", $0.action.rawValue, hits.local) }
            + operatorRules.map {
                row($0.name, "operator", OperatorRules.trafficRule($0).action.rawValue, hits.operator)
            }
    }
}
