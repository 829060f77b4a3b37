import BraidConfig
import BraidCore
import BraidNetlink
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Keeps the kernel in step with each uplink: a routing table with its default route and a
/// source rule whenever the link has carrier and an address (so probes can leave through it),
/// and an MPTCP endpoint only while the uplink is healthy (so the path manager never puts data on
/// a dead link). `refresh` reads what the kernel says about the link, `apply` makes the kernel
/// match; both are idempotent, so a lost netlink event or a route the kernel flushed with a link
/// is mended by the next pass. Also installs the fwmark rule and local route TPROXY needs.
final class UplinkManager {
    struct Uplink {
        let config: UplinkConfig
        let table: UInt32
        var ifindex: UInt32?
        /// Administratively up with carrier.
        var carrier = false
        var addresses: [IPPrefix] = []
        var learnedGateway4: IPAddress?
        var learnedGateway6: IPAddress?
        var routes: Set<RouteTables.Route> = []
        var rules: Set<RouteTables.Rule> = []
        var endpoints: [IPAddress: UInt8] = [:]

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
    private let pathManager: MPTCPPathManager
    private(set) var uplinks: [Uplink]
    private var baseRoutes: [RouteTables.Route] = []
    private var baseRules: [RouteTables.Rule] = []
    private var previousLimits: (subflows: UInt32, addAddrAccepted: UInt32)?

    /// Rule priorities: uplink source rules, then the TPROXY mark rule, both ahead of `main` (32766).
    static let sourceRulePriority: UInt32 = 4800
    static let markRulePriority: UInt32 = 4700

    init(config: GatewayConfig, logger: Logger) throws {
        self.config = config
        self.logger = logger
        routes = try RouteTables()
        pathManager = try MPTCPPathManager()
        uplinks = config.uplinks.enumerated().map { i, u in
            Uplink(config: u, table: u.table ?? config.tableBase + 1 + UInt32(i))
        }
    }

    /// TPROXY's mark rule and local routes, and the path manager's limits.
    func installBase() throws {
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
        // Endpoints a crashed run left for our uplinks' addresses would shadow ours.
        let mine = Set(config.uplinks.compactMap { RouteTables.interfaceIndex($0.device) })
        for stale in try pathManager.endpoints() where mine.contains(stale.ifindex) {
            try? pathManager.delete(id: stale.id)
        }
        previousLimits = try pathManager.limits()
        let configured = UInt32(config.uplinks.filter { $0.role != .off }.count)
        let subflows = min(config.maxSubflows, max(configured, 1))
        try pathManager.setLimits(subflows: subflows, addAddrAccepted: previousLimits?.addAddrAccepted ?? 0)
        logger.notice("MPTCP limits set", metadata: ["subflows": "\(subflows)"])
    }

    /// Reads the link's state, addresses and learned next hops.
    func refresh(_ i: Int) {
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

    /// Makes the kernel match the uplink's desired state; `healthy` is what its probes say.
    func apply(_ i: Int, healthy: Bool) {
        let u = uplinks[i]
        var wantRoutes: Set<RouteTables.Route> = []
        var wantRules: Set<RouteTables.Rule> = []
        var wantEndpoints: Set<IPAddress> = []
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
                    if healthy { wantEndpoints.insert(p.address) }
                }
            }
        }
        converge(i, routes: wantRoutes, rules: wantRules, endpoints: wantEndpoints)
    }

    /// Adds and removes what differs between what is installed for the uplink and what is wanted.
    private func converge(
        _ i: Int, routes wantRoutes: Set<RouteTables.Route>, rules wantRules: Set<RouteTables.Rule>,
        endpoints wantEndpoints: Set<IPAddress>
    ) {
        var u = uplinks[i]
        defer { uplinks[i] = u }
        // Endpoints first when withdrawing, so no subflow is left on a route about to vanish.
        for (address, id) in u.endpoints where !wantEndpoints.contains(address) {
            do {
                try pathManager.delete(id: id)
                logger.notice("endpoint withdrawn", metadata: ["uplink": "\(u.name)", "address": "\(address)", "endpoint": "\(id)"])
            } catch let e as NetlinkError where e.errno == ENOENT || e.errno == EINVAL {
            } catch {
                logger.warning("\(error)")
            }
            u.endpoints[address] = nil
        }
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
        for address in wantEndpoints where u.endpoints[address] == nil {
            var flags: MPTCPPathManager.Flags = [.subflow]
            if u.config.role == .backup { flags.insert(.backup) }
            do {
                let id = try pathManager.add(address: address, flags: flags, ifindex: u.ifindex ?? 0)
                u.endpoints[address] = id
                logger.notice(
                    "endpoint installed",
                    metadata: [
                        "uplink": "\(u.name)", "device": "\(u.config.device)", "address": "\(address)",
                        "table": "\(u.table)", "endpoint": "\(id)", "role": "\(u.config.role)",
                    ])
            } catch {
                logger.warning("cannot install MPTCP endpoint", metadata: ["uplink": "\(u.name)", "error": "\(error)"])
            }
        }
    }

    /// Removes everything installed, endpoints first; keeps going past failures.
    func remove() {
        for i in uplinks.indices { converge(i, routes: [], rules: [], endpoints: []) }
        for rule in baseRules.reversed() {
            do { try routes.delete(rule) } catch { logger.warning("\(error)") }
        }
        baseRules = []
        for route in baseRoutes.reversed() {
            do { try routes.delete(route) } catch { logger.warning("\(error)") }
        }
        baseRoutes = []
        if let l = previousLimits {
            try? pathManager.setLimits(subflows: l.subflows, addAddrAccepted: l.addAddrAccepted)
            previousLimits = nil
        }
    }
}
