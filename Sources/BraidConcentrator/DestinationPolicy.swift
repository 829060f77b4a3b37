import BraidConfig
import BraidCore

/// Where the concentrator may open a connection for a gateway. A relay in a data centre that
/// connects anywhere it is asked is a way into its own host, the operator's private networks and
/// the cloud's metadata service (SSRF); this policy is what stops that.
///
/// A destination is judged in this order; the first refusal is the answer:
/// 1. `never`: unspecified, loopback, multicast and reserved ranges, and the concentrator's own
///    addresses. Nothing opens these: no service a gateway should reach lives there, and a
///    connection to the concentrator itself could reach its control port or management.
/// 2. The most specific entry among `builtIn` (private, shared, link-local and other
///    special-purpose ranges, and the cloud metadata addresses), `deny_dest` and `allow_dest`
///    decides, as a routing table would. At equal length `deny_dest` beats `allow_dest`, and
///    `allow_dest` beats the built-in list, so `allow_dest 169.254.169.254/32` opens the metadata
///    address while `allow_dest 169.254.0.0/16` does not.
/// 3. An IPv6 destination that embeds an IPv4 address (`EmbeddedIPv4`: mapped, compatible,
///    NAT64, 6to4, Teredo) is refused when any of its IPv4 addresses would be refused by 1 or 2.
/// 4. Ports: port 0, a `deny_port` entry, or a port outside a non-empty `allow_port`.
///
/// Documentation and benchmarking ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
/// 198.18.0.0/15, 2001:db8::/32) are allowed, so a lab works without configuration.
///
/// No I/O: the concentrator's own addresses are an argument (`LocalAddresses` reads them).
public struct DestinationPolicy: Sendable {
    /// A built-in range and why it is there.
    public struct Range: Hashable, Sendable, CustomStringConvertible {
        public var prefix: IPPrefix
        public var why: String

        init(_ prefix: String, _ why: String) {
            guard let p = IPPrefix(prefix) else { preconditionFailure("built-in range \(prefix) is not a prefix") }
            self.prefix = p
            self.why = why
        }

        /// "172.16.0.0/12 (private, RFC 1918)"
        public var description: String { "\(prefix) (\(why))" }
    }

    /// Refused whatever `allow_dest` says.
    public static let never: [Range] = [
        Range("0.0.0.0/8", "this network, RFC 791"),
        Range("127.0.0.0/8", "loopback"),
        Range("224.0.0.0/4", "multicast"),
        Range("240.0.0.0/4", "reserved and broadcast"),
        Range("::/128", "unspecified"),
        Range("::1/128", "loopback"),
        Range("ff00::/8", "multicast"),
    ]

    /// Refused unless a more specific (or equally specific) `allow_dest` opens them.
    public static let builtIn: [Range] = [
        Range("10.0.0.0/8", "private, RFC 1918"),
        Range("100.64.0.0/10", "shared address space, RFC 6598"),
        Range("169.254.0.0/16", "link-local"),
        Range("172.16.0.0/12", "private, RFC 1918"),
        Range("192.0.0.0/24", "IETF protocol assignments, RFC 6890"),
        Range("192.168.0.0/16", "private, RFC 1918"),
        Range("100::/64", "discard-only, RFC 6666"),
        Range("64:ff9b:1::/48", "NAT64 local use, RFC 8215"),
        Range("fc00::/7", "unique local, RFC 4193"),
        Range("fe80::/10", "link-local"),
        Range("fec0::/10", "site-local, deprecated"),
        // Host routes, so that opening the range around one does not open the metadata service.
        Range("169.254.169.254/32", "cloud metadata: AWS, GCP, Azure, OpenStack"),
        Range("169.254.170.2/32", "cloud metadata: AWS ECS"),
        Range("100.100.100.200/32", "cloud metadata: Alibaba Cloud"),
        Range("168.63.129.16/32", "cloud metadata: Azure WireServer"),
        Range("192.0.0.192/32", "cloud metadata: Oracle Cloud"),
        Range("fd00:ec2::254/128", "cloud metadata: AWS"),
    ]

    /// `deny_dest`, IPv4-mapped entries already read as IPv4.
    public var denyDestinations: [IPPrefix]
    /// `allow_dest`, likewise.
    public var allowDestinations: [IPPrefix]
    /// `deny_port`.
    public var denyPorts: [PortRange]
    /// `allow_port`; empty allows every port.
    public var allowPorts: [PortRange]

    public init(
        denyDestinations: [IPPrefix] = [], allowDestinations: [IPPrefix] = [], denyPorts: [PortRange] = [],
        allowPorts: [PortRange] = []
    ) {
        self.denyDestinations = denyDestinations.map(\.unmappingIPv4)
        self.allowDestinations = allowDestinations.map(\.unmappingIPv4)
        self.denyPorts = denyPorts
        self.allowPorts = allowPorts
    }

    /// The policy a concentrator configuration asks for.
    public init(_ config: ConcentratorConfig) {
        self.init(
            denyDestinations: config.denyDestinations, allowDestinations: config.allowDestinations,
            denyPorts: config.denyPorts, allowPorts: config.allowPorts)
    }

    /// Why `destination` is refused, or nil when the concentrator may connect to it.
    /// `localAddresses` are the concentrator's own addresses at the time of the check.
    public func refusal(for destination: Endpoint, localAddresses: Set<IPAddress>) -> DestinationRefusal? {
        // An IPv4-mapped address is IPv4: the kernel connects to the IPv4 address.
        let address = IPAddress(mappedIPv6Bytes: destination.address.mappedIPv6Bytes)!
        let mapped = address.isIPv4 && !destination.address.isIPv4
        if let rule = judge(address, localAddresses) {
            let embedded = mapped ? EmbeddedIPv4(.ipv4Mapped, address) : nil
            return DestinationRefusal(destination: destination, rule: rule, embedded: embedded)
        }
        for inner in EmbeddedIPv4.all(in: address) {
            if let rule = judge(inner.address, localAddresses) {
                return DestinationRefusal(destination: destination, rule: rule, embedded: inner)
            }
        }
        if let rule = judge(port: destination.port) {
            return DestinationRefusal(destination: destination, rule: rule, embedded: nil)
        }
        return nil
    }

    /// Steps 1 and 2 for one address.
    private func judge(_ address: IPAddress, _ local: Set<IPAddress>) -> DestinationRefusal.Rule? {
        if let r = Self.never.first(where: { $0.prefix.contains(address) }) { return .never(r) }
        if local.contains(address) { return .ownAddress }
        // The longest match wins; `rank` breaks a tie: deny_dest, then allow_dest, then built-in.
        var best: (length: Int, rank: Int, rule: DestinationRefusal.Rule?)?
        func consider(_ prefix: IPPrefix, rank: Int, _ rule: DestinationRefusal.Rule?) {
            guard prefix.contains(address) else { return }
            if let b = best, (b.length, b.rank) >= (prefix.length, rank) { return }
            best = (prefix.length, rank, rule)
        }
        for r in Self.builtIn { consider(r.prefix, rank: 0, .builtIn(r)) }
        for p in allowDestinations { consider(p, rank: 1, nil) }
        for p in denyDestinations { consider(p, rank: 2, .denyDest(p)) }
        return best?.rule
    }

    /// Step 4.
    private func judge(port: UInt16) -> DestinationRefusal.Rule? {
        if port == 0 { return .portZero }
        if let r = denyPorts.first(where: { $0.contains(port) }) { return .denyPort(r) }
        if !allowPorts.isEmpty && !allowPorts.contains(where: { $0.contains(port) }) { return .portNotAllowed }
        return nil
    }
}

/// A destination the concentrator will not connect to, and the rule that says so.
public struct DestinationRefusal: Hashable, Sendable, CustomStringConvertible {
    public enum Rule: Hashable, Sendable {
        case never(DestinationPolicy.Range)
        case ownAddress
        case builtIn(DestinationPolicy.Range)
        case denyDest(IPPrefix)
        case portZero
        case denyPort(PortRange)
        case portNotAllowed
    }

    public var destination: Endpoint
    public var rule: Rule
    /// The embedded IPv4 address the rule refused, when it was not the destination itself.
    public var embedded: EmbeddedIPv4?

    /// The rule alone, for counting: a bounded set of names however many destinations are refused.
    /// "built-in 172.16.0.0/12", "deny_dest 10.0.0.0/8", "own address", "deny_port 25".
    public var ruleName: String {
        switch rule {
        case .never(let r): "built-in \(r.prefix)"
        case .ownAddress: "own address"
        case .builtIn(let r): "built-in \(r.prefix)"
        case .denyDest(let p): "deny_dest \(p)"
        case .portZero: "port 0"
        case .denyPort(let r): "deny_port \(r)"
        case .portNotAllowed: "not in allow_port"
        }
    }

    /// "64:ff9b::ac10:501 embeds 172.16.5.1 (NAT64 64:ff9b::/96), refused by built-in 172.16.0.0/12
    /// (private, RFC 1918)"
    public var description: String {
        let what =
            switch rule {
            case .never(let r): "built-in \(r) (allow_dest cannot open it)"
            case .ownAddress: "the concentrator's own address (allow_dest cannot open it)"
            case .builtIn(let r): "built-in \(r)"
            case .denyDest(let p): "deny_dest \(p)"
            case .portZero: "port 0"
            case .denyPort(let r): "deny_port \(r)"
            case .portNotAllowed: "port \(destination.port) not in allow_port"
            }
        guard let embedded else { return "\(destination.address) refused by \(what)" }
        return "\(destination.address) embeds \(embedded.address) (\(embedded.form.rawValue)), refused by \(what)"
    }
}
