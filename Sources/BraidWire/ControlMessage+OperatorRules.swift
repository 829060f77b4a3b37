import BraidCore

/// The `operatorRules` message: the rules an operator provisions on the concentrator for a
/// service class (`config rule` with `option class`), pushed to that class's gateways, which
/// evaluate them after their own rules and before their `default_action`.
///
/// Payload: a count byte, then each rule:
///
///     name (string: length byte + UTF-8, letters, digits, '_', '@', '[', ']')
///     action (1 bond, 2 direct, 3 block)   proto (1 tcp, 2 udp, 3 any)
///     dest: count byte, each: family (4 or 6), prefix length, 4 or 16 address bytes
///     src:  the same
///     dest_port: count byte, each: lowest and highest port (16 bits each)
///     src_mac: count byte, each: 6 bytes
///
/// At most `OperatorRuleLimits.maximumRules` rules and `OperatorRuleLimits.maximumPayloadSize`
/// bytes: the gateway refuses more from the frame's header, before buffering it, and the
/// concentrator's `braid check` refuses a class whose rules would not fit.
extension ControlMessage {
    public struct OperatorRule: Equatable, Sendable {
        public enum Action: UInt8, Sendable, CaseIterable {
            case bond = 1
            case direct = 2
            case block = 3
        }

        public enum Proto: UInt8, Sendable, CaseIterable {
            case tcp = 1
            case udp = 2
            case any = 3
        }

        /// The rule's section name on the concentrator; the gateway's nft rules carry it as a comment.
        public var name: String
        public var action: Action
        public var proto: Proto
        public var destinations: [IPPrefix]
        public var sources: [IPPrefix]
        public var destinationPorts: [PortRange]
        public var sourceMACs: [MACAddress]

        public init(
            name: String, action: Action, proto: Proto = .tcp, destinations: [IPPrefix] = [],
            sources: [IPPrefix] = [], destinationPorts: [PortRange] = [], sourceMACs: [MACAddress] = []
        ) {
            self.name = name
            self.action = action
            self.proto = proto
            self.destinations = destinations
            self.sources = sources
            self.destinationPorts = destinationPorts
            self.sourceMACs = sourceMACs
        }

        /// Bytes this rule takes in the payload.
        public var encodedSize: Int {
            OperatorRuleLimits.encodedSize(
                name: name, destinations: destinations, sources: sources, portRanges: destinationPorts.count,
                macAddresses: sourceMACs.count)
        }
    }

    /// Refuses what a gateway would refuse: too many rules, a list too long, a name it cannot
    /// take, a payload beyond the bound, a bond rule for UDP alone.
    public static func check(_ rules: [OperatorRule]) throws {
        guard rules.count <= OperatorRuleLimits.maximumRules else {
            throw ControlError(
                .invalidValue, "operatorRules: \(rules.count) rules exceed \(OperatorRuleLimits.maximumRules)")
        }
        var size = OperatorRuleLimits.payloadHeaderSize
        for (i, rule) in rules.enumerated() {
            guard OperatorRuleLimits.isValidName(rule.name) else {
                throw ControlError(
                    .invalidValue, "operatorRules[\(i)].name is not a section name: \(rule.name.debugDescription)")
            }
            let lists = [
                ("dest", rule.destinations.count), ("src", rule.sources.count),
                ("dest_port", rule.destinationPorts.count), ("src_mac", rule.sourceMACs.count),
            ]
            for (list, count) in lists where count > OperatorRuleLimits.maximumListCount {
                throw ControlError(
                    .invalidValue,
                    "operatorRules[\(i)] \(rule.name).\(list): \(count) entries exceed "
                        + "\(OperatorRuleLimits.maximumListCount)"
                )
            }
            guard !(rule.action == .bond && rule.proto == .udp) else {
                throw ControlError(
                    .invalidValue, "operatorRules[\(i)] \(rule.name): bond with proto udp (only TCP is relayed)")
            }
            size += rule.encodedSize
        }
        guard size <= OperatorRuleLimits.maximumPayloadSize else {
            throw ControlError(
                .invalidValue, "operatorRules: \(size) bytes exceed \(OperatorRuleLimits.maximumPayloadSize)")
        }
    }

    static func encode(_ rules: [OperatorRule], into w: inout ControlWriter) throws {
        try check(rules)
        w.u8(UInt8(rules.count))
        for rule in rules {
            try w.string(rule.name, field: "operatorRules.name")
            w.u8(rule.action.rawValue)
            w.u8(rule.proto.rawValue)
            for list in [rule.destinations, rule.sources] {
                w.u8(UInt8(list.count))
                for prefix in list {
                    w.u8(prefix.address.isIPv4 ? 4 : 6)
                    w.u8(UInt8(prefix.length))
                    w.bytes(prefix.address.bytes)
                }
            }
            w.u8(UInt8(rule.destinationPorts.count))
            for range in rule.destinationPorts {
                w.u16(range.lower)
                w.u16(range.upper)
            }
            w.u8(UInt8(rule.sourceMACs.count))
            for mac in rule.sourceMACs { w.bytes(mac.octets) }
        }
    }

    static func decodeOperatorRules(_ r: inout ControlReader) throws -> [OperatorRule] {
        let count = Int(try r.u8("count"))
        guard count <= OperatorRuleLimits.maximumRules else {
            throw ControlError(
                .invalidValue, "operatorRules.count \(count) exceeds \(OperatorRuleLimits.maximumRules)")
        }
        var rules: [OperatorRule] = []
        for i in 0..<count {
            let name = try r.string("rule[\(i)].name")
            guard OperatorRuleLimits.isValidName(name) else {
                throw ControlError(.invalidValue, "operatorRules.rule[\(i)].name is not a section name: \(name)")
            }
            let actionByte = try r.u8("rule[\(i)].action")
            guard let action = OperatorRule.Action(rawValue: actionByte) else {
                throw ControlError(.invalidValue, "operatorRules.rule[\(i)].action \(actionByte), expected 1 to 3")
            }
            let protoByte = try r.u8("rule[\(i)].proto")
            guard let proto = OperatorRule.Proto(rawValue: protoByte) else {
                throw ControlError(.invalidValue, "operatorRules.rule[\(i)].proto \(protoByte), expected 1 to 3")
            }
            let destinations = try prefixes(&r, "rule[\(i)].dest")
            let sources = try prefixes(&r, "rule[\(i)].src")
            var ports: [PortRange] = []
            let portCount = Int(try r.u8("rule[\(i)].dest_port count"))
            for j in 0..<portCount {
                let lower = try r.u16("rule[\(i)].dest_port[\(j)]")
                let upper = try r.u16("rule[\(i)].dest_port[\(j)]")
                guard let range = PortRange(lower, upper) else {
                    throw ControlError(.invalidValue, "operatorRules.rule[\(i)].dest_port[\(j)] \(lower)-\(upper)")
                }
                ports.append(range)
            }
            var macs: [MACAddress] = []
            let macCount = Int(try r.u8("rule[\(i)].src_mac count"))
            for j in 0..<macCount {
                macs.append(MACAddress(octets: try r.bytes(6, "rule[\(i)].src_mac[\(j)]"))!)
            }
            let rule = OperatorRule(
                name: name, action: action, proto: proto, destinations: destinations, sources: sources,
                destinationPorts: ports, sourceMACs: macs)
            rules.append(rule)
        }
        try check(rules)
        return rules
    }

    private static func prefixes(_ r: inout ControlReader, _ field: String) throws -> [IPPrefix] {
        var list: [IPPrefix] = []
        let count = Int(try r.u8("\(field) count"))
        for j in 0..<count {
            let family = try r.u8("\(field)[\(j)].family")
            guard family == 4 || family == 6 else {
                throw ControlError(.invalidValue, "operatorRules.\(field)[\(j)].family \(family), expected 4 or 6")
            }
            let length = Int(try r.u8("\(field)[\(j)].length"))
            let address = IPAddress(bytes: try r.bytes(family == 4 ? 4 : 16, "\(field)[\(j)].address"))!
            guard let prefix = IPPrefix(address: address, length: length) else {
                throw ControlError(.invalidValue, "operatorRules.\(field)[\(j)] /\(length) is too long for \(address)")
            }
            list.append(prefix)
        }
        return list
    }
}
