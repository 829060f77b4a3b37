import BraidCore

/// The congestion control of the MPTCP data connections' subflows, on the side that sends
/// (`congestion_control`): `system` leaves the kernel's default. Linux's MPTCP scheduler shares
/// data among subflows by their pacing rates; BBR derives its pacing rate from a bandwidth model
/// that a shaper's bursts can inflate far past the line rate, and the scheduler then queues on
/// the slowest uplink data that the others wait for at the receiver (README, Benchmark).
public enum CongestionControl: String, Sendable, CaseIterable {
    case cubic, bbr, reno, system

    /// The kernel's name of the algorithm to ask for (TCP_CONGESTION), nil for `system`.
    public var kernelName: String? { self == .system ? nil : rawValue }
}

/// Role of an uplink in bonding: `active` carries data, `backup` only when no active uplink is up
/// (MPTCP backup priority), `off` is configured but unused, `overflow` only while the active
/// uplinks are saturated (the gateway's steering turns its backup priority off and on).
public enum UplinkRole: String, Sendable, CaseIterable {
    case active, backup, off, overflow
}

/// What the gateway does with LAN UDP to port 443 (QUIC): `tcp` refuses it at once (ICMP port
/// unreachable) so browsers use TCP, which is bonded; `pass` routes it like other UDP.
public enum QUICMode: String, Sendable, CaseIterable {
    case tcp, pass
}

/// What a `config rule` (or `default_action`) does with the LAN traffic it matches.
public enum RuleAction: String, Sendable, CaseIterable {
    /// TCP is relayed through the concentrator; other protocols are routed as `direct`.
    case bond
    /// Routed out of an uplink, NATed to its address.
    case direct
    /// Refused at once: a TCP reset, else ICMP administratively prohibited.
    case block
}

/// Protocol a `config rule` matches.
public enum RuleProtocol: String, Sendable, CaseIterable {
    case tcp, udp, any
}

/// `config rule` section of the gateway: a match and an action, first match wins.
public struct TrafficRule: Equatable, Sendable {
    /// Section name, or uci's `@rule[N]` for an anonymous one; the nft rules carry it as a comment.
    public var name: String
    public var destinations: [IPPrefix] = []
    public var destinationPorts: [PortRange] = []
    public var sources: [IPPrefix] = []
    public var sourceMACs: [MACAddress] = []
    public var proto: RuleProtocol = .tcp
    public var action: RuleAction
    /// `direct` only: the uplink that carries the traffic; nil is the best healthy one.
    public var uplink: String? = nil

    public init(
        name: String, destinations: [IPPrefix] = [], destinationPorts: [PortRange] = [], sources: [IPPrefix] = [],
        sourceMACs: [MACAddress] = [], proto: RuleProtocol = .tcp, action: RuleAction, uplink: String? = nil
    ) {
        self.name = name
        self.destinations = destinations
        self.destinationPorts = destinationPorts
        self.sources = sources
        self.sourceMACs = sourceMACs
        self.proto = proto
        self.action = action
        self.uplink = uplink
    }
}

/// `config uplink` sections of the gateway.
public struct UplinkConfig: Equatable, Sendable {
    public var name: String
    public var device: String
    public var role: UplinkRole
    /// Next hop; nil means "learn it from the device's default route" (DHCP, PPP).
    public var gateway: IPAddress?
    /// Routing table number for this uplink's source rule; nil picks one from `table_base`.
    public var table: UInt32?
    /// The most this uplink may carry of the bonded bytes, in percent, while another uplink is up;
    /// nil is no cap. A class's `uplink_share` for it may lower it further.
    public var share: UInt8? = nil
    /// The data cap (`quota` and its options); nil: none.
    public var quota: UplinkQuota? = nil
    /// MPTCP subflows each connection opens over this uplink (1 to 4).
    public var subflows: Int = 1
}

/// Length of a data cap's period (`quota_period`).
public enum QuotaPeriodLength: String, Sendable, CaseIterable {
    case day, week, month
}

/// What an uplink becomes at its data cap (`quota_action`).
public enum QuotaAction: String, Sendable, CaseIterable {
    case backup, off
}

/// An uplink's data cap: bytes per period, and what happens at the cap.
public struct UplinkQuota: Equatable, Sendable, CustomStringConvertible {
    /// Bytes received and sent per period (1000-based suffixes in the file).
    public var bytes: UInt64
    public var period: QuotaPeriodLength
    /// `month`: day of the month, 1-31; `week`: ISO weekday, 1 (Monday) to 7; ignored for `day`.
    public var resetDay: Int
    public var action: QuotaAction

    public init(bytes: UInt64, period: QuotaPeriodLength = .month, resetDay: Int = 1, action: QuotaAction = .backup) {
        self.bytes = bytes
        self.period = period
        self.resetDay = resetDay
        self.action = action
    }

    public var description: String {
        "\(bytes) bytes per \(period)" + (period == .day ? "" : " from day \(resetDay)") + ", then \(action)"
    }
}

/// Certificate files of the TLS control channel (PEM). Either all of ca, cert and key are configured or none.
public struct TLSFiles: Equatable, Sendable {
    /// CA certificates the peer's certificate must chain to.
    public var ca: String
    /// This end's certificate.
    public var cert: String
    /// This end's private key.
    public var key: String
    /// Certificate revocation list checked for the peer; the concentrator's only.
    public var crl: String?

    public init(ca: String, cert: String, key: String, crl: String? = nil) {
        self.ca = ca
        self.cert = cert
        self.key = key
        self.crl = crl
    }
}

/// `config class NAME`: an operator's plan, limits applied to each subscriber in it.
public struct ServiceClass: Equatable, Sendable {
    public var name: String
    /// Bits per second towards the subscriber; 0 is unlimited.
    public var rateDown: UInt64
    /// Bits per second from the subscriber; 0 is unlimited.
    public var rateUp: UInt64
    /// Open data connections per subscriber; 0 is unlimited.
    public var maxSessions: UInt32
    /// Caps on the subscribers' uplinks' part of their bonded bytes (`list uplink_share`), pushed
    /// to their gateways over the control channel.
    public var uplinkShares: [UplinkShare]

    public init(
        name: String, rateDown: UInt64 = 0, rateUp: UInt64 = 0, maxSessions: UInt32 = 0,
        uplinkShares: [UplinkShare] = []
    ) {
        self.name = name
        self.rateDown = rateDown
        self.rateUp = rateUp
        self.maxSessions = maxSessions
        self.uplinkShares = uplinkShares
    }
}

/// `config subscriber NAME`: a gateway known by its certificate's subject common name.
public struct Subscriber: Equatable, Sendable {
    /// The certificate's subject common name (the section name).
    public var name: String
    /// Name of a `ServiceClass`; the reader checks that it exists.
    public var serviceClass: String
    /// false refuses the subscriber's control and data connections.
    public var enabled: Bool

    public init(name: String, serviceClass: String, enabled: Bool = true) {
        self.name = name
        self.serviceClass = serviceClass
        self.enabled = enabled
    }
}

/// `config gateway` section.
public struct GatewayConfig: Equatable, Sendable {
    /// The first of `servers`: the one concentrator of a gateway with `option server`.
    public var server: ConcentratorHost
    /// `server` as a list: the concentrators in order of preference (one with `option server`).
    public var servers: [ConcentratorHost] = []
    /// Seconds a more preferred concentrator must have been healthy before new sessions go back to it.
    public var serverHolddown: Double = 30
    public var port: UInt16
    public var pskFile: String
    public var lanDevices: [String]
    /// Local port of the transparent listener that TPROXY hands LAN connections to.
    public var tproxyPort: UInt16
    /// Packet mark that routes TPROXY'd packets to the local stack.
    public var fwmark: UInt32
    /// Table for the `local` route that TPROXY needs; uplink tables count up from table_base + 1.
    public var tableBase: UInt32
    /// Kernel MPTCP limit of additional subflows per connection.
    public var maxSubflows: UInt32
    /// Send the Convert message in the SYN (TCP Fast Open, no cookie). Off by default: on
    /// Linux 6.18 an MPTCP connection opened with data in its SYN was measured at a few percent
    /// of the throughput of one opened without (see the README's "Known limits").
    public var fastOpen: Bool
    public var uplinks: [UplinkConfig]
    /// Milliseconds between two end-to-end probes of each uplink (ICMP echo to the concentrator).
    public var probeInterval: UInt32 = 200
    /// An uplink with no probe answered for this many milliseconds is down.
    public var downAfter: UInt32 = 1000
    /// A down uplink is up again after this many answered probes in a row.
    public var upAfter: UInt32 = 3
    /// Unix socket where `braid status` asks the running gateway.
    public var statusSocket: String = "/run/braid/gateway.sock"
    /// The concentrator's TLS control port.
    public var controlPort: UInt16 = 4803
    /// Certificate files of the control channel; nil when not configured.
    public var tls: TLSFiles? = nil
    /// Name the concentrator's certificate must carry; the reader fills in the server address text when unset.
    public var serverName: String = ""
    /// Seconds between keepalives on the control channel; dead after three unanswered.
    public var keepalive: UInt32 = 10
    /// Seconds an uplink must have been up before non-relayed traffic moves back to it.
    public var holddown: Double = 10
    /// LAN UDP to port 443: refused (`tcp`) or routed (`pass`).
    public var quic: QUICMode = .tcp
    /// `congestion_control`: what the subflows of uploads use (the gateway sends them).
    public var congestionControl: CongestionControl = .cubic
    /// Where the status page is served (`web_listen`).
    public var webListen: ListenerSetting = .lan(port: 80)
    /// Where the Prometheus metrics are served; nil: not at all.
    public var metricsListen: Endpoint? = nil
    /// `server_name` as set: the name data connections' MACs are bound to. nil (unset) binds each
    /// to the concentrator address it dials, one per family.
    public var macIdentity: String? = nil
    /// What LAN traffic no rule matches gets: `bond` or `direct` (never `block`).
    public var defaultAction: RuleAction = .bond
    /// `config rule` sections in file order.
    public var rules: [TrafficRule] = []
    /// Where the uplinks' data-cap usage is kept (`state_dir`).
    public var stateDir: String = "/etc/braid/state"
}

/// `config concentrator` section, with the service classes and subscribers it enforces.
public struct ConcentratorConfig: Equatable, Sendable {
    public var listen: IPAddress
    /// `announce`: addresses announced to gateways over the control channel; empty derives them.
    public var announce: [IPAddress] = []
    public var port: UInt16
    public var pskFile: String
    /// `deny_dest`: refused on top of the concentrator's built-in list.
    public var denyDestinations: [IPPrefix]
    /// `allow_dest`: opened although the built-in list refuses them.
    public var allowDestinations: [IPPrefix] = []
    /// `deny_port`: destination ports never connected to.
    public var denyPorts: [PortRange] = []
    /// `allow_port`: when not empty, the only destination ports connected to.
    public var allowPorts: [PortRange] = []
    /// Seconds a client may take to send its whole Convert message.
    public var handshakeTimeout: Double
    /// `congestion_control`: what the subflows of downloads use (the concentrator sends them).
    public var congestionControl: CongestionControl = .cubic
    /// `keepalive`: seconds of silence before a data connection's gateway is probed; 0 never.
    public var keepalive: UInt32 = 120
    /// Data connections accepted but not yet authenticated, at most (`max_pending`).
    public var maxPending: UInt32 = 16384
    /// The same, from one IPv4 address or IPv6 /64 (`max_pending_per_source`).
    public var maxPendingPerSource: UInt32 = 1024
    /// TLS handshakes in progress on the control port, at most (`max_control_handshakes`).
    public var maxControlHandshakes: UInt32 = 256
    /// The same, from one IPv4 address or IPv6 /64 (`max_control_handshakes_per_source`).
    public var maxControlHandshakesPerSource: UInt32 = 16
    /// TLS control port.
    public var controlPort: UInt16 = 4803
    /// Certificate files of the control channel, with an optional revocation list; nil when not configured.
    public var tls: TLSFiles? = nil
    /// Seconds a session key handed out over the control channel stays valid.
    public var sessionLifetime: UInt32 = 3600
    public var classes: [ServiceClass] = []
    public var subscribers: [Subscriber] = []
    /// Unix socket where `braid reload` asks the running concentrator.
    public var statusSocket: String = "/run/braid/concentrator.sock"
    /// Class of the connections authenticated with the pre-shared key (key id 0), all together;
    /// nil: unlimited without TLS, refused with TLS.
    public var pskClass: String? = nil
    /// Extra names a data connection's MAC may be bound to (`identity`).
    public var identities: [String] = []
    /// Where the Prometheus metrics are served; nil: not at all.
    public var metricsListen: Endpoint? = nil
    /// Where subscribers and classes live (`store`); with PostgreSQL, `classes` and `subscribers`
    /// above are empty and the store's replace them at run time.
    public var store: StoreLocation = .uci
    /// `store_password_file`: the PostgreSQL password when the URL has none.
    public var storePasswordFile: String? = nil
    /// Seconds per usage row written to a PostgreSQL store (`accounting_interval`).
    public var accountingInterval: UInt32 = 60
    /// `config rule` sections with `option class`: pushed to that class's gateways, in file order.
    public var rules: [OperatorRuleConfig] = []

    /// Whether data connections with the pre-shared key are accepted at all: in the simple mode
    /// always, next to TLS only with a class of their own.
    public var acceptsPresharedKey: Bool { !pskFile.isEmpty && (tls == nil || pskClass != nil) }
}

/// Reads typed role configurations from a UCI package through `ConfigSchema.braid`, collecting every error.
public struct BraidConfigReader {
    public let package: UCIPackage
    public let schema: ConfigSchema

    public init(package: UCIPackage, schema: ConfigSchema = .braid) {
        self.package = package
        self.schema = schema
    }

    public static func load(path: String) throws -> UCIPackage {
        guard let text = try? readFile(path) else {
            throw ConfigError(file: path, line: 0, "cannot read the configuration file")
        }
        return try UCIParser.parse(text, file: path)
    }

    /// The roles whose main section (`config gateway`, `config concentrator`) the package holds.
    public var roles: [ConfigRole] {
        ConfigRole.allCases.filter { !package.sections(ofType: $0.rawValue).isEmpty }
    }

    /// Every problem of the package for a role, in file order; empty when the role can run with it.
    public func problems(for role: ConfigRole) -> [ConfigError] {
        switch role {
        case .gateway: readGateway().errors
        case .concentrator: readConcentrator().errors
        }
    }

    /// What `braid check` reports: the roles checked (the one given, else those the file holds) and every
    /// problem for them in file order. A file with neither role's section is a problem itself.
    public func check(role: ConfigRole? = nil) -> (roles: [ConfigRole], problems: [ConfigError]) {
        let checked = role.map { [$0] } ?? roles
        guard !checked.isEmpty else {
            let message = "no 'config gateway' or 'config concentrator' section"
            return ([], [ConfigError(file: package.file, line: 0, message)])
        }
        var problems: [ConfigError] = []
        // Both roles report an unknown section type; a file holding both roles shows it once.
        for e in checked.flatMap(problems(for:)) where !problems.contains(e) { problems.append(e) }
        return (checked, sortedByLine(problems))
    }

    public mutating func gateway() throws -> GatewayConfig {
        let (config, errors) = readGateway()
        guard let config, errors.isEmpty else { throw ConfigErrors(errors: errors) }
        return config
    }

    public mutating func concentrator() throws -> ConcentratorConfig {
        let (config, errors) = readConcentrator()
        guard let config, errors.isEmpty else { throw ConfigErrors(errors: errors) }
        return config
    }

    // MARK: - gateway

    func readGateway() -> (config: GatewayConfig?, errors: [ConfigError]) {
        var p = schema.validate(package, role: .gateway)
        guard let g = p.sections(ofType: "gateway").first else { return (nil, p.errors) }
        let servers = g.texts("server").map(ConcentratorHost.init)
        let server = servers.first ?? .address(.v4(0))
        var config = GatewayConfig(
            server: server,
            port: UInt16(truncatingIfNeeded: g.number("port") ?? 0),
            pskFile: g.text("psk_file") ?? "",
            lanDevices: g.texts("lan_device"),
            tproxyPort: UInt16(truncatingIfNeeded: g.number("tproxy_port") ?? 0),
            fwmark: UInt32(truncatingIfNeeded: g.number("fwmark") ?? 0),
            tableBase: UInt32(truncatingIfNeeded: g.number("table_base") ?? 0),
            maxSubflows: UInt32(truncatingIfNeeded: g.number("max_subflows") ?? 0),
            fastOpen: g.flag("fastopen") ?? false,
            uplinks: [],
            probeInterval: UInt32(truncatingIfNeeded: g.number("probe_interval") ?? 0),
            downAfter: UInt32(truncatingIfNeeded: g.number("down_after") ?? 0),
            upAfter: UInt32(truncatingIfNeeded: g.number("up_after") ?? 0),
            statusSocket: g.text("status_socket") ?? "",
            controlPort: UInt16(truncatingIfNeeded: g.number("control_port") ?? 0),
            tls: tlsFiles(g, &p),
            serverName: g.text("server_name") ?? server.description,
            keepalive: UInt32(g.seconds("keepalive") ?? 10),
            holddown: g.seconds("holddown") ?? 10,
            quic: g.text("quic").flatMap(QUICMode.init) ?? .tcp,
            webListen: g.text("web_listen").flatMap { ListenerSetting($0, defaultPort: 80) } ?? .lan(port: 80))
        config.metricsListen = metricsListen(g, &p)
        config.macIdentity = g.text("server_name")
        config.servers = servers
        config.serverHolddown = g.seconds("server_holddown") ?? 30
        config.congestionControl = g.text("congestion_control").flatMap(CongestionControl.init) ?? .cubic
        checkServers(g, &p, config)
        checkDistinctPorts(g, &p)
        if let web = g.text("web_listen").flatMap({ ListenerSetting($0, defaultPort: 80) })?.port,
            web == g.number("tproxy_port").map({ UInt16(truncatingIfNeeded: $0) })
        {
            // The transparent listener holds that port on every address, and only TPROXY may reach it.
            p.error(g, "web_listen", "must not use tproxy_port", value: g.text("web_listen") ?? "")
        }
        if let interval = g.number("probe_interval"), let down = g.number("down_after"), down < 2 * interval {
            // Fewer than two probes per down_after would declare an uplink down on a single lost echo.
            p.error(g, "down_after", "must be at least twice probe_interval, \(2 * interval)", value: "\(down)")
        }
        for u in p.sections(ofType: "uplink") {
            config.uplinks.append(
                UplinkConfig(
                    name: u.label, device: u.text("device") ?? "",
                    role: u.text("role").flatMap(UplinkRole.init) ?? .off,
                    gateway: u.address("gateway"), table: u.number("table").map { UInt32(truncatingIfNeeded: $0) },
                    // 100, the default, is no cap.
                    share: u.number("share").flatMap { $0 < 100 ? UInt8($0) : nil },
                    quota: readQuota(u, &p),

                    subflows: Int(u.number("subflows") ?? 1)))
        }
        config.stateDir = g.text("state_dir") ?? config.stateDir
        if let base = g.number("table_base"), (253...255).contains(base) {
            // braid fills and, after a crash, empties this table: never one of the kernel's own.
            p.error(g, "table_base", "is one of the kernel's tables (253 default, 254 main, 255 local)", value: "\(base)")
        }
        checkUplinks(p.sections(ofType: "uplink"), tableBase: g.number("table_base"), &p)
        config.defaultAction = g.text("default_action").flatMap(RuleAction.init) ?? .bond
        config.rules = p.sections(ofType: "rule").map { readRule($0, &p) }
        return (config, sortedByLine(p.errors))
    }

    /// A `config rule`, with the combinations the data path cannot do reported against it.
    /// A class's `uplink_share` list: each uplink once, few enough for one control frame.
    private func readUplinkShares(_ c: ValidatedSection, _ p: inout ValidatedPackage) -> [UplinkShare] {
        let shares = c.texts("uplink_share").compactMap(UplinkShare.init)
        if shares.count > 8 {
            p.error(c, "uplink_share", "at most 8 uplink shares per class", value: "\(shares.count)")
            return []
        }
        var seen: Set<String> = []
        for share in shares where !seen.insert(share.uplink).inserted {
            p.error(c, "uplink_share", "names uplink \(share.uplink) twice", value: "\(share)")
            return []
        }
        return shares
    }

    func readRule(_ r: ValidatedSection, _ p: inout ValidatedPackage) -> TrafficRule {
        let rule = TrafficRule(
            name: r.label, destinations: r.prefixes("dest"), destinationPorts: r.portRanges("dest_port"),
            sources: r.prefixes("src"), sourceMACs: r.macAddresses("src_mac"),
            proto: r.text("proto").flatMap(RuleProtocol.init) ?? .tcp,
            action: r.text("action").flatMap(RuleAction.init) ?? .block,
            uplink: r.schema.option("uplink") == nil ? nil : r.text("uplink"))
        if rule.action == .bond && rule.proto == .udp {
            // The concentrator relays TCP streams; a bonded UDP rule would silently route instead.
            p.error(r, "proto", "a bond rule needs tcp or any: only TCP is relayed", value: "udp")
        }
        if let uplink = rule.uplink, r.isSet("action"), rule.action != .direct {
            p.error(r, "uplink", "only a direct rule names an uplink (action is \(rule.action))", value: uplink)
        }
        // A rule whose sources and destinations are all of different families can never match.
        let srcFamilies = Set(rule.sources.map(\.address.isIPv4))
        let destFamilies = Set(rule.destinations.map(\.address.isIPv4))
        if !srcFamilies.isEmpty && !destFamilies.isEmpty && srcFamilies.isDisjoint(with: destFamilies) {
            p.error(
                r, "dest", "no destination is of the family of a src, so the rule never matches",
                value: rule.destinations.map(\.description).joined(separator: " "))
        }
        return rule
    }

    /// `quota` and its options, with the combinations that cannot mean anything reported.
    private func readQuota(_ u: ValidatedSection, _ p: inout ValidatedPackage) -> UplinkQuota? {
        let period = u.text("quota_period").flatMap(QuotaPeriodLength.init) ?? .month
        let resetDay = Int(u.number("quota_reset_day") ?? 1)
        if period == .week, resetDay > 7 {
            p.error(
                u, "quota_reset_day", "a weekly quota resets on a weekday, 1 (Monday) to 7 (Sunday)",
                value: "\(resetDay)")
        }
        guard u.isSet("quota") else {
            // Settings of a cap that is not there: an installer who left out quota meant something.
            for option in ["quota_period", "quota_reset_day", "quota_action"] where u.isSet(option) {
                // An invalid value has its own error already.
                guard let value = u.text(option) ?? u.number(option).map({ "\($0)" }) else { continue }
                p.error(u, option, "has no effect without quota", value: value)
            }
            return nil
        }
        guard let bytes = u.number("quota") else { return nil }
        if bytes == 0 {
            p.error(u, "quota", "must be more than 0 bytes (leave quota out for no cap)", value: "0")
        }
        return UplinkQuota(
            bytes: bytes, period: period, resetDay: resetDay,
            action: u.text("quota_action").flatMap(QuotaAction.init) ?? .backup)
    }

    /// One device carries one uplink, and each uplink's routing table is its own.
    private func checkUplinks(_ uplinks: [ValidatedSection], tableBase: UInt64?, _ p: inout ValidatedPackage) {
        var devices: [String: String] = [:]
        var tables: [UInt64: String] = [:]
        for (i, u) in uplinks.enumerated() {
            if let device = u.text("device") {
                if let other = devices[device] {
                    p.error(u, "device", "already used by uplink \(other)", value: device)
                } else {
                    devices[device] = u.label
                }
            }
            guard let tableBase, let table = u.isSet("table") ? u.number("table") : tableBase + 1 + UInt64(i) else {
                continue
            }
            if (253...255).contains(table) {
                p.error(
                    u, "table", "is one of the kernel's tables (253 default, 254 main, 255 local)", value: "\(table)")
            } else if table == tableBase {
                p.error(u, "table", "is table_base, the TPROXY table", value: "\(table)")
            } else if table > UInt32.max {
                p.error(u, "table", "table_base + position is beyond 4294967295", value: "\(table)")
            } else if let other = tables[table] {
                p.error(u, "table", "already used by uplink \(other)", value: "\(table)")
            } else {
                tables[table] = u.label
            }
        }
    }

    // MARK: - concentrator

    func readConcentrator() -> (config: ConcentratorConfig?, errors: [ConfigError]) {
        var p = schema.validate(package, role: .concentrator)
        guard let c = p.sections(ofType: "concentrator").first else { return (nil, p.errors) }
        var tls = tlsFiles(c, &p)
        if let crl = c.text("crl") {
            if tls == nil {
                p.error(c, "crl", "needs ca, cert and key", value: crl)
            }
            tls?.crl = crl
        }
        checkDistinctPorts(c, &p)
        if let bad = c.addresses("announce").first(where: { !$0.isDialableUnicast }) {
            // A gateway would drop it: unspecified, loopback, link-local and multicast lead nowhere.
            p.error(c, "announce", "is not an address a gateway can dial", value: "\(bad)")
        }
        if let pskClass = c.text("psk_class"), !c.isSet("psk_file") {
            p.error(c, "psk_class", "needs psk_file", value: pskClass)
        }
        var config = ConcentratorConfig(
            listen: c.address("listen") ?? .v4(0),
            announce: c.addresses("announce"),
            port: UInt16(truncatingIfNeeded: c.number("port") ?? 0),
            pskFile: c.text("psk_file") ?? "",
            denyDestinations: c.prefixes("deny_dest"),
            allowDestinations: c.prefixes("allow_dest"),
            denyPorts: c.portRanges("deny_port"),
            allowPorts: c.portRanges("allow_port"),
            handshakeTimeout: c.seconds("handshake_timeout") ?? 0,
            maxPending: UInt32(truncatingIfNeeded: c.number("max_pending") ?? 0),
            maxPendingPerSource: UInt32(truncatingIfNeeded: c.number("max_pending_per_source") ?? 0),
            maxControlHandshakes: UInt32(truncatingIfNeeded: c.number("max_control_handshakes") ?? 0),
            maxControlHandshakesPerSource: UInt32(
                truncatingIfNeeded: c.number("max_control_handshakes_per_source") ?? 0),
            controlPort: UInt16(truncatingIfNeeded: c.number("control_port") ?? 0),
            tls: tls,
            sessionLifetime: UInt32(c.seconds("session_lifetime") ?? 0),
            classes: p.sections(ofType: "class").map {
                ServiceClass(
                    name: $0.label, rateDown: $0.number("rate_down") ?? 0, rateUp: $0.number("rate_up") ?? 0,
                    maxSessions: UInt32(truncatingIfNeeded: $0.number("max_sessions") ?? 0),
                    uplinkShares: readUplinkShares($0, &p))
            },
            subscribers: p.sections(ofType: "subscriber").map {
                Subscriber(name: $0.label, serviceClass: $0.text("class") ?? "", enabled: $0.flag("enabled") ?? true)
            },
            statusSocket: c.text("status_socket") ?? "")
        config.metricsListen = metricsListen(c, &p)
        config.pskClass = c.text("psk_class")
        config.identities = c.texts("identity")
        config.congestionControl = c.text("congestion_control").flatMap(CongestionControl.init) ?? .cubic
        config.keepalive = UInt32(c.seconds("keepalive") ?? 120)
        readStore(c, &p, into: &config)
        config.rules = readOperatorRules(&p)
        return (config, sortedByLine(p.errors))
    }

    /// `store`, `store_password_file`, `accounting_interval`. With a PostgreSQL store the file holds
    /// no subscribers or classes: two lists of them, one unused, would let an operator edit the
    /// wrong one.
    private func readStore(_ c: ValidatedSection, _ p: inout ValidatedPackage, into config: inout ConcentratorConfig) {
        config.accountingInterval = UInt32(c.seconds("accounting_interval") ?? 60)
        config.storePasswordFile = c.text("store_password_file")
        guard let text = c.text("store"), let store = try? StoreLocation(text) else { return }
        config.store = store
        guard case .postgreSQL(let url) = store else { return }
        #if !PostgreSQLStore
        p.error(c, "store", "this build has no PostgreSQL support (built without the PostgreSQLStore trait)",
            value: url.description)
        #endif
        if url.password != nil, let file = config.storePasswordFile {
            p.error(c, "store_password_file", "the store URL has a password already", value: file)
        }
        for s in p.sections(ofType: "subscriber") + p.sections(ofType: "class") {
            p.error(s, nil, "\(s.schema.type) sections are not read with store \(url): manage them with "
                + "`braid subscriber` (or set store 'uci')")
        }
        if let pskClass = c.text("psk_class") {
            p.error(c, "psk_class", "is not supported with a PostgreSQL store", value: pskClass)
        }
        config.classes = []
        config.subscribers = []
    }

    // MARK: - shared checks

    /// ca, cert and key together or not at all: half a TLS setup would fail only when the first gateway calls.
    private func tlsFiles(_ s: ValidatedSection, _ p: inout ValidatedPackage) -> TLSFiles? {
        let names = ["ca", "cert", "key"]
        let set = names.filter { s.isSet($0) }
        if set.isEmpty && !s.isSet("psk_file") {
            p.error(s, "psk_file", "required unless ca, cert and key are set (the TLS control channel)")
        }
        guard !set.isEmpty else { return nil }
        for missing in names where !set.contains(missing) {
            p.error(s, missing, "required with \(ConfigSchema.sentence(set, "and"))")
        }
        guard let ca = s.text("ca"), let cert = s.text("cert"), let key = s.text("key") else { return nil }
        return TLSFiles(ca: ca, cert: cert, key: key)
    }

    /// `metrics_listen`, refused on an unspecified address unless `metrics_any_address` says so:
    /// the metrics name subscribers and uplinks and show their traffic, and a daemon on a public
    /// host (every concentrator) would serve them to anyone who scans it.
    private func metricsListen(_ s: ValidatedSection, _ p: inout ValidatedPackage) -> Endpoint? {
        guard let e = s.endpoint("metrics_listen") else { return nil }
        if e.address.bytes.allSatisfy({ $0 == 0 }), s.flag("metrics_any_address") != true {
            p.error(
                s, "metrics_listen",
                "an unspecified address serves the metrics on every address of the host; set metrics_any_address "
                    + "'1' to mean it, or bind a management address",
                value: "\(e)")
        }
        return e
    }

    /// `list server` with several concentrators: each is judged by its own control channel and
    /// grants its own session keys, so TLS is needed; each certificate carries its own entry, so a
    /// single `server_name` cannot name them all.
    private func checkServers(_ g: ValidatedSection, _ p: inout ValidatedPackage, _ config: GatewayConfig) {
        let written = g.section.option("server")
        if written?.writtenAsOptionAndList == true {
            p.error(
                g, "server", "option server and list server are both set; use list server alone for several",
                value: written?.values.joined(separator: " "))
            return
        }
        var seen: Set<ConcentratorHost> = []
        for host in config.servers where !seen.insert(host).inserted {
            p.error(g, "server", "listed twice", value: host.description)
        }
        guard config.servers.count > 1 else { return }
        if config.tls == nil {
            p.error(
                g, "server", "several concentrators need the control channel (ca, cert and key)",
                value: config.servers.map(\.description).joined(separator: " "))
        }
        if let name = g.text("server_name") {
            p.error(
                g, "server_name",
                "names one concentrator; with list server each certificate must carry its own entry", value: name)
        }
    }

    /// The MPTCP data listener and the TLS control listener are both TCP: one port cannot serve both.
    private func checkDistinctPorts(_ s: ValidatedSection, _ p: inout ValidatedPackage) {
        if let port = s.number("port"), port == s.number("control_port") {
            p.error(s, "control_port", "must differ from port", value: "\(port)")
        }
    }

    private func sortedByLine(_ errors: [ConfigError]) -> [ConfigError] {
        errors.enumerated().sorted { ($0.element.line, $0.offset) < ($1.element.line, $1.offset) }.map(\.element)
    }
}

func readFile(_ path: String) throws -> String {
    guard let f = fopen(path, "r") else { throw ConfigError(file: path, line: 0, "cannot open") }
    defer { fclose(f) }
    var data: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&buf, 1, buf.count, f)
        if n <= 0 { break }
        data += buf[0..<n]
        if data.count > 16 << 20 { throw ConfigError(file: path, line: 0, "file larger than 16 MiB") }
    }
    return String(decoding: data, as: UTF8.self)
}

#if canImport(Glibc)
import Glibc
#endif
