import BraidConfig
import BraidCore
import BraidNetlink
import Logging

/// Installs what each uplink needs in the kernel: a routing table with its default route, a
/// source rule pointing at it, and an MPTCP endpoint, so the in-kernel path manager opens one
/// subflow per usable uplink. Also the fwmark rule and local route that TPROXY needs. Everything
/// installed is remembered and removed in reverse order on stop.
final class UplinkManager {
    private let config: GatewayConfig
    private let logger: Logger
    private let routes: RouteTables
    private let pathManager: MPTCPPathManager
    private var installedRoutes: [RouteTables.Route] = []
    private var installedRules: [RouteTables.Rule] = []
    private var installedEndpoints: [UInt8] = []
    private var previousLimits: (subflows: UInt32, addAddrAccepted: UInt32)?

    /// Rule priorities: uplink source rules, then the TPROXY mark rule, both ahead of `main` (32766).
    static let sourceRulePriority: UInt32 = 4800
    static let markRulePriority: UInt32 = 4700

    init(config: GatewayConfig, logger: Logger) throws {
        self.config = config
        self.logger = logger
        routes = try RouteTables()
        pathManager = try MPTCPPathManager()
    }

    func install() throws {
        // TPROXY: marked packets are delivered locally (ip rule fwmark -> table with `local default`).
        let lo = RouteTables.interfaceIndex("lo") ?? 1
        for v6 in [false, true] {
            let route = RouteTables.Route(
                table: config.tableBase, destination: IPPrefix(v6 ? "::/0" : "0.0.0.0/0")!, gateway: nil, ifindex: lo,
                local: true)
            try routes.add(route)
            installedRoutes.append(route)
            let rule = RouteTables.Rule(
                ipv6: v6, priority: Self.markRulePriority, table: config.tableBase, fwmark: config.fwmark)
            try? routes.delete(rule)  // left over by a crashed run
            try routes.add(rule)
            installedRules.append(rule)
        }

        // Remove endpoints a crashed run left for our uplink addresses, then add ours.
        var endpointCount: UInt32 = 0
        for (index, uplink) in config.uplinks.enumerated() where uplink.role != .off {
            guard let ifindex = RouteTables.interfaceIndex(uplink.device) else {
                logger.warning("uplink device missing", metadata: ["uplink": "\(uplink.name)", "device": "\(uplink.device)"])
                continue
            }
            let table = uplink.table ?? config.tableBase + 1 + UInt32(index)
            let prefixes = try routes.addresses(ifindex: ifindex)
            if prefixes.isEmpty {
                logger.warning("uplink has no address yet", metadata: ["uplink": "\(uplink.name)", "device": "\(uplink.device)"])
            }
            for v6 in [false, true] {
                let mine = prefixes.filter { $0.address.isIPv4 != v6 }
                guard !mine.isEmpty else { continue }
                var gateway = uplink.gateway.flatMap { $0.isIPv4 != v6 ? $0 : nil }
                if gateway == nil { gateway = try routes.defaultGateway(ifindex: ifindex, ipv6: v6) }
                // Without a next hop the uplink is treated as point-to-point (PPP, LTE raw IP).
                if gateway == nil {
                    logger.warning(
                        "no gateway configured or learned; routing the uplink as point-to-point",
                        metadata: ["uplink": "\(uplink.name)", "device": "\(uplink.device)"])
                }
                let route = RouteTables.Route(
                    table: table, destination: IPPrefix(v6 ? "::/0" : "0.0.0.0/0")!, gateway: gateway, ifindex: ifindex)
                try routes.add(route)
                installedRoutes.append(route)
                for p in mine {
                    let host = IPPrefix(address: p.address, length: v6 ? 128 : 32)!
                    let rule = RouteTables.Rule(ipv6: v6, priority: Self.sourceRulePriority, table: table, source: host)
                    try? routes.delete(rule)
                    try routes.add(rule)
                    installedRules.append(rule)
                    for stale in try pathManager.endpoints() where stale.address == p.address {
                        try? pathManager.delete(id: stale.id)
                    }
                    var flags: MPTCPPathManager.Flags = [.subflow]
                    if uplink.role == .backup { flags.insert(.backup) }
                    let id = try pathManager.add(address: p.address, flags: flags, ifindex: ifindex)
                    installedEndpoints.append(id)
                    endpointCount += 1
                    logger.notice(
                        "uplink installed",
                        metadata: [
                            "uplink": "\(uplink.name)", "device": "\(uplink.device)", "address": "\(p.address)",
                            "gateway": "\(gateway.map { "\($0)" } ?? "none")", "table": "\(table)",
                            "endpoint": "\(id)", "role": "\(uplink.role)",
                        ])
                }
            }
        }
        previousLimits = try pathManager.limits()
        let subflows = min(config.maxSubflows, max(endpointCount, 1))
        try pathManager.setLimits(subflows: subflows, addAddrAccepted: previousLimits?.addAddrAccepted ?? 0)
        logger.notice("MPTCP limits set", metadata: ["subflows": "\(subflows)"])
    }

    /// Removes everything `install` added, in reverse order; keeps going past failures.
    func remove() {
        for id in installedEndpoints.reversed() {
            do { try pathManager.delete(id: id) } catch { logger.warning("\(error)") }
        }
        installedEndpoints = []
        for rule in installedRules.reversed() {
            do { try routes.delete(rule) } catch { logger.warning("\(error)") }
        }
        installedRules = []
        for route in installedRoutes.reversed() {
            do { try routes.delete(route) } catch { logger.warning("\(error)") }
        }
        installedRoutes = []
        if let l = previousLimits {
            try? pathManager.setLimits(subflows: l.subflows, addAddrAccepted: l.addAddrAccepted)
            previousLimits = nil
        }
    }
}
