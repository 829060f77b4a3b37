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

        /// The rules of the `rules` chain: the gateway's own, then the operator's (their chain
        /// returns here when none matches), then the default verdict.
        func chainRules(markMask: UInt32) -> [String] {
            statements.map { $0.nft(markMask: markMask) } + ["jump \(Interception.operatorChain)"]
                + [bondByDefault ? "goto bond" : "accept"]
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

extension Interception {
    /// The chain of the rules the operator pushes over the control channel: jumped to after the
    /// gateway's own rules, so those win, and before `default_action`. A chain of its own, so a
    /// push replaces it alone and the gateway's rules keep their counters.
    public static let operatorChain = "operator_rules"

    /// Makes the operator's chain hold `statements`, in one transaction: flushed and refilled
    /// while nothing else in the table changes, so connections running are untouched (as for
    /// `setSteering`) and the gateway's own rules keep their counters.
    public func setOperatorRules(_ statements: [RuleStatement]) throws {
        guard installed, statements != settings.operatorRules else {
            settings.operatorRules = statements
            return
        }
        let table = "inet \(settings.tableName)"
        var commands = "flush chain \(table) \(Self.operatorChain)\n"
        for rule in statements {
            commands += "add rule \(table) \(Self.operatorChain) \(rule.nft(markMask: markMask))\n"
        }
        try run(commands)
        settings.operatorRules = statements
    }

    /// What one rule's nft statements counted: the packets and bytes that matched them, summed
    /// over the statements it became (one per family and protocol).
    public struct RuleHits: Equatable, Sendable {
        /// The rule's name (the statements' comment).
        public var name: String
        public var packets: UInt64
        public var bytes: UInt64
    }

    /// The counters of the gateway's own rules (`local`) and of the operator's, in chain order.
    /// A rule matches a connection's first packets only (later ones are accepted before the
    /// rules), so its packets are about its connections and flows.
    public func ruleHits() throws -> (local: [RuleHits], operator: [RuleHits]) {
        guard installed else { return ([], []) }
        let table = "inet \(settings.tableName)"
        return (
            Self.hits(inListing: try list("list chain \(table) rules\n")),
            Self.hits(inListing: try list("list chain \(table) \(Self.operatorChain)\n"))
        )
    }

    /// Reads `nft list chain` output: each rule line with `counter packets N bytes M` and
    /// `comment "NAME"` adds to NAME. Lines without a comment (the jump, the default) are skipped.
    static func hits(inListing text: String) -> [RuleHits] {
        var out: [RuleHits] = []
        for line in text.split(separator: "\n") {
            guard let name = field(line, after: "comment \"", until: "\""),
                let packets = field(line, after: "counter packets ", until: " ").flatMap({ UInt64($0) }),
                let bytes = field(line, after: " bytes ", until: " ").flatMap({ UInt64($0) })
            else { continue }
            if let i = out.firstIndex(where: { $0.name == name }) {
                out[i].packets += packets
                out[i].bytes += bytes
            } else {
                out.append(RuleHits(name: name, packets: packets, bytes: bytes))
            }
        }
        return out
    }

    /// The text between the first `start` in `line` and the next `end` (or the line's end).
    private static func field(_ line: Substring, after start: String, until end: Character) -> String? {
        guard let r = line.firstRange(of: start) else { return nil }
        let rest = line[r.upperBound...]
        return String(rest.prefix { $0 != end })
    }
}
