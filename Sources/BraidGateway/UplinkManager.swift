import BraidConfig
import BraidCore
import BraidDataPlane
import BraidNetlink
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Keeps the kernel in step with each uplink: a routing table with its default route and a
/// source rule whenever the link has carrier and an address, so probes and subflows can leave
/// through it. `refresh` reads what the kernel says about the link, `apply` makes the kernel
/// match; both are idempotent, so a lost netlink event or a route the kernel flushed with a link
/// is mended by the next pass. Also installs the fwmark rule and local route TPROXY needs, and
/// hands MPTCP subflows to the userspace path manager (SubflowPlanner decides them per connection).
final class UplinkManager {
    struct Uplink {
        /// Changed by a reload: the uplink keeps its name, link state and installed routes.
        var config: UplinkConfig
        var table: UInt32
        var ifindex: UInt32?
        /// Administratively up with carrier.
        var carrier = false
        var addresses: [IPPrefix] = []
        var learnedGateway4: IPAddress?
        var learnedGateway6: IPAddress?
        var routes: Set<RouteTables.Route> = []
        var rules: Set<RouteTables.Rule> = []

        var usable: Bool { config.role != .off && ifindex != nil && carrier && !addresses.isEmpty }
        var name: String { config.name }

        /// The uplink's first address of `other`'s family: the source of its probes and of
        /// connections that start on it.
        func address(sameFamilyAs other: IPAddress) -> IPAddress? {
            addresses.first(where: { $0.address.isIPv4 == other.isIPv4 })?.address
        }
    }

    private let config: GatewayConfig
    private let logger: Logger
    private let routes: RouteTables
    /// In configuration order (new connections prefer the first healthy one); an uplink is known
    /// by its section name, which stays while a reload adds, removes or changes others.
    private(set) var uplinks: [Uplink]
    private var baseRoutes: [RouteTables.Route] = []
    private var baseRules: [RouteTables.Rule] = []
    /// Where each change to the kernel's settings is recorded before it is made, and the
    /// routing tables braid uses: what the start after a crash repairs.
    private let state: KernelStateFile

    /// Rule priorities: uplink source rules, then the TPROXY mark rule, both ahead of `main` (32766).
    static let sourceRulePriority: UInt32 = 4800
    static let markRulePriority: UInt32 = 4700

    init(config: GatewayConfig, state: KernelStateFile, logger: Logger) throws {
        self.config = config
        self.state = state
        self.logger = logger
        routes = try RouteTables()
        let tables = config.uplinkTables
        uplinks = config.uplinks.map { Uplink(config: $0, table: tables[$0.name]!) }
    }

    subscript(name: String) -> Uplink? {
        uplinks.first { $0.name == name }
    }

    /// Rules a run that was killed left behind: at braid's priorities, looking up one of braid's
    /// tables. Found by that pair and not by address, since the address a source rule was for
    /// may be gone (a new DHCP lease while the gateway was down).
    static func leftoverRules(_ rules: [RouteTables.Rule], tables: Set<UInt32>) -> [RouteTables.Rule] {
        rules.filter { [sourceRulePriority, markRulePriority].contains($0.priority) && tables.contains($0.table) }
    }

    /// Removes what an earlier run left in braid's tables and rules (nothing after a clean stop):
    /// every route in the tables the configuration and the state file name, and the rules at
    /// braid's priorities that look them up. Runs before anything is installed.
    private func removeLeftovers() throws {
        let tables = Set(config.uplinkTables.values).union([config.tableBase]).union(state.record.tables)
        let rules = Self.leftoverRules(try routes.rules(), tables: tables)
        let stale = try routes.routes(inTables: tables)
        for rule in rules { try routes.delete(rule) }
        for route in stale { try? routes.delete(route) }  // a local route may go with its address
        if !rules.isEmpty || !stale.isEmpty {
            logger.notice(
                "removed routing state an earlier run left",
                metadata: ["rules": "\(rules.count)", "routes": "\(stale.count)", "tables": "\(tables.sorted())"])
        }
    }

    /// TPROXY's mark rule and local routes, and the userspace path manager; first, whatever an
    /// earlier run that did not stop cleanly left.
    func installBase() throws {
        try removeLeftovers()
        try state.remember(tables: Set(uplinks.map(\.table)).union([config.tableBase]))
        let lo = RouteTables.interfaceIndex("lo") ?? 1
        for v6 in [false, true] {
            let route = RouteTables.Route(
                table: config.tableBase, destination: IPPrefix(v6 ? "::/0" : "0.0.0.0/0")!, gateway: nil, ifindex: lo,
                local: true)
            try routes.add(route)
            baseRoutes.append(route)
            let rule = RouteTables.Rule(
                ipv6: v6, priority: Self.markRulePriority, table: config.tableBase, fwmark: config.fwmark)
            try? routes.delete(rule)  // left over by a crashed run
            try routes.add(rule)
            baseRules.append(rule)
        }
        // Per namespace, for sockets created from now on: set before the first connection.
        let selection = try MPTCPPathManager.userspaceSelection()
        try state.set(selection.sysctl, to: selection.value)
        logger.notice(
            "MPTCP path manager: userspace (subflows opened by the gateway)",
            metadata: [
                selection.sysctl: "\(selection.value)",
                "previous": "\(state.record.original(selection.sysctl) ?? selection.value)",
            ])
    }

    /// The addresses of `devices`, in their order; a device missing or unreadable has none.
    func addresses(ofDevices devices: [String]) -> [IPAddress] {
        devices.flatMap { device -> [IPAddress] in
            guard let ifindex = RouteTables.interfaceIndex(device) else { return [] }
            return ((try? routes.addresses(ifindex: ifindex)) ?? []).map(\.address)
        }
    }

    /// Reads the link's state, addresses and learned next hops.
    func refresh(_ name: String) {
        guard let i = uplinks.firstIndex(where: { $0.name == name }) else { return }
        var u = uplinks[i]
        u.ifindex = RouteTables.interfaceIndex(u.config.device)
        if let ifindex = u.ifindex {
            do {
                let state = try routes.linkState(ifindex: ifindex)
                u.carrier = (state?.up ?? false) && (state?.carrier ?? false)
                u.addresses = try routes.addresses(ifindex: ifindex)
                u.learnedGateway4 = try routes.defaultGateway(ifindex: ifindex, ipv6: false)
                u.learnedGateway6 = try routes.defaultGateway(ifindex: ifindex, ipv6: true)
            } catch {
                logger.warning("cannot read uplink state", metadata: ["uplink": "\(u.name)", "error": "\(error)"])
            }
        } else {
            u.carrier = false
            u.addresses = []
        }
        uplinks[i] = u
    }

    /// Makes the kernel match the uplink's desired state.
    func apply(_ name: String) {
        guard let i = uplinks.firstIndex(where: { $0.name == name }) else { return }
        let u = uplinks[i]
        var wantRoutes: Set<RouteTables.Route> = []
        var wantRules: Set<RouteTables.Rule> = []
        if u.usable, let ifindex = u.ifindex {
            for v6 in [false, true] {
                let mine = u.addresses.filter { $0.address.isIPv4 != v6 }
                guard !mine.isEmpty else { continue }
                // Without a next hop the uplink is routed as point-to-point (PPP, LTE raw IP).
                let configured = u.config.gateway.flatMap { $0.isIPv4 != v6 ? $0 : nil }
                let gateway = configured ?? (v6 ? u.learnedGateway6 : u.learnedGateway4)
                wantRoutes.insert(
                    RouteTables.Route(
                        table: u.table, destination: IPPrefix(v6 ? "::/0" : "0.0.0.0/0")!, gateway: gateway, ifindex: ifindex))
                for p in mine {
                    wantRules.insert(
                        RouteTables.Rule(
                            ipv6: v6, priority: Self.sourceRulePriority, table: u.table,
                            source: IPPrefix(address: p.address, length: v6 ? 128 : 32)!))
                }
            }
        }
        converge(&uplinks[i], routes: wantRoutes, rules: wantRules)
    }

    /// Adds and removes what differs between what is installed for the uplink and what is wanted.
    private func converge(
        _ u: inout Uplink, routes wantRoutes: Set<RouteTables.Route>, rules wantRules: Set<RouteTables.Rule>
    ) {
        for rule in u.rules.subtracting(wantRules) {
            try? routes.delete(rule)
            u.rules.remove(rule)
        }
        for route in u.routes.subtracting(wantRoutes) {
            try? routes.delete(route)  // the kernel may have flushed it with the link
            u.routes.remove(route)
        }
        // Routes are re-added every pass (replace): the kernel drops them when the link goes down.
        for route in wantRoutes {
            do {
                try routes.add(route)
                u.routes.insert(route)
            } catch {
                logger.warning("cannot install uplink route", metadata: ["uplink": "\(u.name)", "error": "\(error)"])
            }
        }
        for rule in wantRules where !u.rules.contains(rule) {
            try? routes.delete(rule)  // left over by a crashed run
            do {
                try routes.add(rule)
                u.rules.insert(rule)
            } catch {
                logger.warning("cannot install uplink rule", metadata: ["uplink": "\(u.name)", "error": "\(error)"])
            }
        }
    }

    /// Removes everything installed; keeps going past failures.
    func remove() {
        for i in uplinks.indices { converge(&uplinks[i], routes: [], rules: []) }
        for rule in baseRules.reversed() {
            do { try routes.delete(rule) } catch { logger.warning("\(error)") }
        }
        baseRules = []
        for route in baseRoutes.reversed() {
            do { try routes.delete(route) } catch { logger.warning("\(error)") }
        }
        baseRoutes = []
    }
}

/// What a reload does to the kernel state of single uplinks. Each touches one uplink only: the
/// others' routes and rules stay installed, and with them the subflows that leave through them.
extension UplinkManager {
    /// Appends an uplink; the next `refresh` and `apply` install its route and rules.
    func add(_ config: UplinkConfig, table: UInt32) {
        rememberTable(table)
        uplinks.append(Uplink(config: config, table: table))
    }

    /// Removes the uplink's route and source rules, and forgets it.
    func remove(_ name: String) {
        guard let i = uplinks.firstIndex(where: { $0.name == name }) else { return }
        converge(&uplinks[i], routes: [], rules: [])
        uplinks.remove(at: i)
    }

    /// Takes new settings for an uplink. What was installed under its old table or for its old
    /// device is removed here, before any uplink installs anything under the new settings: two
    /// uplinks may trade tables in one reload, and one's new route must not be deleted as the
    /// other's old one. A changed next hop or role needs nothing here; `apply` replaces the route.
    func reconfigure(_ name: String, to config: UplinkConfig, table: UInt32) {
        guard let i = uplinks.firstIndex(where: { $0.name == name }) else { return }
        rememberTable(table)
        let old = uplinks[i]
        if old.table != table || old.config.device != config.device {
            converge(&uplinks[i], routes: [], rules: [])
        }
        if old.config.device != config.device {
            uplinks[i] = Uplink(config: config, table: table)
        } else {
            uplinks[i].config = config
            uplinks[i].table = table
        }
    }

    /// Sets the role the uplink plays now: its configured one, or its data cap's action
    /// (UplinkSupervisor+Quota). `config.role` is what routes, subflows and egress follow; the next
    /// `apply` and the planner take it. A reload's `reconfigure` puts the configured role back.
    func setRole(_ name: String, _ role: UplinkRole) {
        guard let i = uplinks.firstIndex(where: { $0.name == name }) else { return }
        uplinks[i].config.role = role
    }

    /// Records a table a reload brings in, so the start after a crash finds its routes.
    private func rememberTable(_ table: UInt32) {
        do {
            try state.remember(tables: [table])
        } catch {
            logger.warning(
                "cannot record routing table in the state file", metadata: ["table": "\(table)", "error": "\(error)"])
        }
    }

    /// Puts the uplinks in the configuration's order: new connections start on the first healthy one.
    func order(_ names: [String]) {
        let rank = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
        uplinks.sort { (rank[$0.name] ?? Int.max) < (rank[$1.name] ?? Int.max) }
    }
}
