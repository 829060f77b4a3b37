import BraidCore

extension Interception {
    /// The bit of the connection mark that says a routed flow was sent to one uplink by a rule
    /// (`option uplink`): its later packets carry the uplink's mark so they keep taking its table.
    public static let pinnedFlowBit: UInt32 = 0x0100_0000

    /// The verdicts of the gateway's rules, as the `rules` chain holds them: the statements in
    /// order, then what traffic no statement matched gets. Replaced whole, in one transaction, on
    /// a reload that changes them.
    public struct Steering: Equatable, Sendable {
        public var statements: [RuleStatement]
        /// Unmatched LAN TCP is relayed (true) or routed (false, the white-list model).
        public var bondByDefault: Bool

        public init(statements: [RuleStatement] = [], bondByDefault: Bool = true) {
            self.statements = statements
            self.bondByDefault = bondByDefault
        }

        /// The rules of the `rules` chain, ending with the default verdict.
        func chainRules(markMask: UInt32) -> [String] {
            statements.map { $0.nft(markMask: markMask) } + [bondByDefault ? "goto bond" : "accept"]
        }
    }

    /// One nftables rule of the `rules` chain: typed matches and a verdict; `nft(markMask:)` is the
    /// only place its text is made.
    public struct RuleStatement: Equatable, Sendable {
        public enum Family: Equatable, Sendable {
            case ipv4, ipv6
        }

        /// Which layer-4 protocols match.
        public enum Protocols: Equatable, Sendable {
            case tcp, udp
            /// TCP and UDP: what a port match needs when the rule names no protocol.
            case tcpOrUDP
            /// Everything but TCP (the part of a `block` or `bond` rule TCP's verdict does not cover).
            case notTCP
        }

        public enum Verdict: Equatable, Sendable {
            /// Relayed: the `bond` chain's TPROXY (TCP only).
            case bond
            /// Routed. `mark`: the uplink's connection mark, to take its table; nil follows the
            /// egress rule (the best healthy uplink).
            case direct(mark: UInt32?)
            /// A TCP reset at once.
            case reset
            /// ICMP (ICMPv6) administratively prohibited at once.
            case prohibited
        }

        /// Address family of `sources` and `destinations`; nil when neither is set.
        public var family: Family?
        public var protocols: Protocols?
        public var sources: [IPPrefix]
        public var destinations: [IPPrefix]
        public var destinationPorts: [PortRange]
        public var sourceMACs: [MACAddress]
        public var verdict: Verdict
        /// The rule's section name, shown by `nft list` so an operator can tell which rule it is.
        public var comment: String

        public init(
            family: Family? = nil, protocols: Protocols? = nil, sources: [IPPrefix] = [],
            destinations: [IPPrefix] = [], destinationPorts: [PortRange] = [], sourceMACs: [MACAddress] = [],
            verdict: Verdict, comment: String
        ) {
            self.family = family
            self.protocols = protocols
            self.sources = sources
            self.destinations = destinations
            self.destinationPorts = destinationPorts
            self.sourceMACs = sourceMACs
            self.verdict = verdict
            self.comment = comment
        }

        func nft(markMask: UInt32) -> String {
            let hex = { (v: UInt32) in "0x" + String(v, radix: 16) }
            let set = { (items: [String]) in items.count == 1 ? items[0] : "{ " + items.joined(separator: ", ") + " }" }
            var parts: [String] = []
            if !sourceMACs.isEmpty { parts.append("ether saddr \(set(sourceMACs.map(\.description)))") }
            let ip = family == .ipv6 ? "ip6" : "ip"
            if !sources.isEmpty { parts.append("\(ip) saddr \(set(sources.map(\.description)))") }
            if !destinations.isEmpty { parts.append("\(ip) daddr \(set(destinations.map(\.description)))") }
            switch protocols {
            case .tcp?: parts.append("meta l4proto tcp")
            case .udp?: parts.append("meta l4proto udp")
            case .tcpOrUDP?: parts.append("meta l4proto { tcp, udp }")
            case .notTCP?: parts.append("meta l4proto != tcp")
            case nil: break
            }
            if !destinationPorts.isEmpty { parts.append("th dport \(set(destinationPorts.map(\.description)))") }
            parts.append("counter")
            switch verdict {
            case .bond:
                parts.append("goto bond")
            case .direct(nil):
                parts.append("accept")
            case .direct(let mark?):
                // The packet's mark picks the uplink's table (EgressRouting's fwmark rule); the flow
                // keeps it in its connection mark, so its later packets are marked the same way.
                let keep = ~(markMask | Interception.pinnedFlowBit)
                parts.append(
                    "meta mark set \(hex(mark)) ct mark set ct mark and \(hex(keep)) or "
                        + "\(hex(mark | Interception.pinnedFlowBit)) accept")
            case .reset:
                parts.append("reject with tcp reset")
            case .prohibited:
                parts.append("reject with icmpx type admin-prohibited")
            }
            // Section names are letters, digits and '_' (anonymous ones `@rule[N]`): nothing to escape.
            parts.append("comment \"\(comment)\"")
            return parts.joined(separator: " ")
        }
    }
}
