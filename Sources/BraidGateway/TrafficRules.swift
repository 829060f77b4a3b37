import BraidConfig
import BraidCore
import BraidDataPlane

/// The gateway's `config rule` sections and `default_action`, compiled into the statements of the
/// interception table's `rules` chain. Policy without I/O: Interception applies the result.
///
/// One rule may become several statements, because nftables matches one address family per
/// statement and because a verdict can be protocol-specific: `block` is a TCP reset for TCP and
/// ICMP administratively prohibited for the rest; `bond` relays TCP, and other protocols a
/// `proto any` rule matches are routed as `direct` (only TCP streams can be relayed).
enum TrafficRules {
    /// `marks`: each uplink's connection mark (EgressMarks), for rules that name an uplink.
    static func steering(
        _ rules: [TrafficRule], defaultAction: RuleAction, marks: (String) -> UInt32?
    ) -> Interception.Steering {
        Interception.Steering(
            statements: rules.flatMap { statements($0, marks: marks) }, bondByDefault: defaultAction != .direct)
    }

    static func statements(_ rule: TrafficRule, marks: (String) -> UInt32?) -> [Interception.RuleStatement] {
        typealias S = Interception.RuleStatement
        // (protocols, verdict) pairs in the order they must be tried.
        let ports = !rule.destinationPorts.isEmpty
        let rest: S.Protocols = ports ? .udp : .notTCP
        let direct = S.Verdict.direct(mark: rule.uplink.flatMap(marks))
        let verdicts: [(S.Protocols?, S.Verdict)]
        switch (rule.action, rule.proto) {
        case (.bond, .tcp), (.bond, .udp): verdicts = [(.tcp, .bond)]
        case (.bond, .any): verdicts = [(.tcp, .bond), (rest, .direct(mark: nil))]
        case (.direct, .tcp): verdicts = [(.tcp, direct)]
        case (.direct, .udp): verdicts = [(.udp, direct)]
        case (.direct, .any): verdicts = [(ports ? .tcpOrUDP : nil, direct)]
        case (.block, .tcp): verdicts = [(.tcp, .reset)]
        case (.block, .udp): verdicts = [(.udp, .prohibited)]
        case (.block, .any): verdicts = [(.tcp, .reset), (rest, .prohibited)]
        }
        var out: [S] = []
        for family in families(rule) {
            let pick = { (prefixes: [IPPrefix]) in
                prefixes.filter { prefix in family.map { prefix.address.isIPv4 == ($0 == .ipv4) } ?? true }
            }
            for (protocols, verdict) in verdicts {
                out.append(
                    S(
                        family: family, protocols: protocols, sources: pick(rule.sources),
                        destinations: pick(rule.destinations), destinationPorts: rule.destinationPorts,
                        sourceMACs: rule.sourceMACs, verdict: verdict, comment: rule.name))
            }
        }
        return out
    }

    /// The address families a rule's statements are written for: none (one statement for both)
    /// when it names no address, else each family that both its sources and its destinations
    /// allow — a rule with IPv4 destinations only never matches IPv6.
    private static func families(_ rule: TrafficRule) -> [Interception.RuleStatement.Family?] {
        let addresses = rule.sources + rule.destinations
        guard !addresses.isEmpty else { return [nil] }
        let allows = { (prefixes: [IPPrefix], v4: Bool) in
            prefixes.isEmpty || prefixes.contains { $0.address.isIPv4 == v4 }
        }
        var out: [Interception.RuleStatement.Family?] = []
        for (family, v4) in [(Interception.RuleStatement.Family.ipv4, true), (.ipv6, false)]
        where allows(rule.sources, v4) && allows(rule.destinations, v4) {
            out.append(family)
        }
        return out
    }
}
