import BraidCore

/// A `config rule` of the concentrator: a gateway rule the operator provisions for every gateway
/// of a service class, pushed over the control channel (never with an uplink: the concentrator
/// does not know a gateway's uplinks).
public struct OperatorRuleConfig: Equatable, Sendable {
    /// The `config class` whose gateways get the rule.
    public var serviceClass: String
    public var rule: TrafficRule

    public init(serviceClass: String, rule: TrafficRule) {
        self.serviceClass = serviceClass
        self.rule = rule
    }

    /// The rules of one class, in file order.
    public static func rules(of serviceClass: String, in all: [OperatorRuleConfig]) -> [TrafficRule] {
        all.filter { $0.serviceClass == serviceClass }.map(\.rule)
    }

    /// Classes whose list of rules differs between `old` and `new`, in the order they first appear.
    static func classesChanged(from old: [OperatorRuleConfig], to new: [OperatorRuleConfig]) -> [String] {
        var classes: [String] = []
        for c in (old + new).map(\.serviceClass) where !classes.contains(c) { classes.append(c) }
        return classes.filter { rules(of: $0, in: old) != rules(of: $0, in: new) }
    }

    /// Bytes the rule takes in the control message that carries it (`OperatorRuleLimits`).
    var encodedSize: Int {
        OperatorRuleLimits.encodedSize(
            name: rule.name, destinations: rule.destinations, sources: rule.sources,
            portRanges: rule.destinationPorts.count, macAddresses: rule.sourceMACs.count)
    }
}

extension BraidConfigReader {
    /// The concentrator's `config rule` sections, checked as the gateway checks its own, and bounded
    /// per class as the control message that carries them is: what passes here always reaches a gateway.
    func readOperatorRules(_ p: inout ValidatedPackage) -> [OperatorRuleConfig] {
        var out: [OperatorRuleConfig] = []
        var sizes: [String: Int] = [:]
        var counts: [String: Int] = [:]
        for r in p.sections(ofType: "rule") {
            let rule = OperatorRuleConfig(serviceClass: r.text("class") ?? "", rule: readRule(r, &p))
            let name = rule.rule.name
            if !OperatorRuleLimits.isValidName(name) {
                p.error(
                    r, nil, "an operator rule's name is at most \(OperatorRuleLimits.maximumNameSize) bytes",
                    value: name)
            }
            let lists = [
                ("dest", rule.rule.destinations.count), ("src", rule.rule.sources.count),
                ("dest_port", rule.rule.destinationPorts.count), ("src_mac", rule.rule.sourceMACs.count),
            ]
            for (list, count) in lists where count > OperatorRuleLimits.maximumListCount {
                p.error(r, list, "at most \(OperatorRuleLimits.maximumListCount) entries", value: "\(count)")
            }
            let c = rule.serviceClass
            counts[c, default: 0] += 1
            sizes[c, default: OperatorRuleLimits.payloadHeaderSize] += rule.encodedSize
            if counts[c]! == OperatorRuleLimits.maximumRules + 1 {
                p.error(
                    r, "class",
                    "more than \(OperatorRuleLimits.maximumRules) rules for this class, the most a "
                        + "gateway takes", value: c)
            } else if counts[c]! <= OperatorRuleLimits.maximumRules,
                sizes[c]! > OperatorRuleLimits.maximumPayloadSize,
                sizes[c]! - rule.encodedSize <= OperatorRuleLimits.maximumPayloadSize
            {
                p.error(
                    r, "class",
                    "the rules of this class up to here take \(sizes[c]!) bytes, more than the "
                        + "\(OperatorRuleLimits.maximumPayloadSize) a gateway takes", value: c)
            }
            out.append(rule)
        }
        return out
    }
}
