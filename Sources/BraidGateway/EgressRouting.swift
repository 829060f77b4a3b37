import BraidConfig
import BraidCore
import BraidDataPlane
import BraidNetlink
import Logging

/// Makes the kernel route what braid does not relay as EgressPolicy decides. Two policy rules per
/// family, ahead of the main table and of whatever default routes DHCP or PPP clients put there:
///
///     4900: lookup main suppress_prefixlength 0   (the LAN, connected and operator routes; no default)
///     4901: lookup <table of the chosen uplink>   (its default route, kept by UplinkManager)
///
/// so the uplink's own table, already kept right (learned next hop, point-to-point), carries the
/// default. A move adds the new 4901 rule before deleting the old one, so no packet meets the
/// main table's default in between, then deletes the connection-tracking entries of the LAN flows
/// NATed to the uplink left (Interception marks them), so they re-map at their next packet.
/// Everything is removed at stop; a start after a crash finds the rules by priority and table.
/// The kernel calls EgressRouting makes: rules over rtnetlink, connection tracking over
/// ctnetlink. The daemon uses `LiveEgressKernel`; tests a recording twin, so the order of the
/// calls (new rule before old one deleted, flows deleted after the move) is checked without a
/// namespace.
protocol EgressKernel: AnyObject {
    func rules() throws -> [RouteTables.Rule]
    func add(_ rule: RouteTables.Rule) throws
    func delete(_ rule: RouteTables.Rule) throws
    func deleteConntrack(mark: UInt32, mask: UInt32, ipv6: Bool) throws
}

final class LiveEgressKernel: EgressKernel {
    private let routes: RouteTables
    private let conntrack: ConntrackTable

    init() throws {
        routes = try RouteTables()
        conntrack = try ConntrackTable()
    }

    func rules() throws -> [RouteTables.Rule] { try routes.rules() }
    func add(_ rule: RouteTables.Rule) throws { try routes.add(rule) }
    func delete(_ rule: RouteTables.Rule) throws { try routes.delete(rule) }
    func deleteConntrack(mark: UInt32, mask: UInt32, ipv6: Bool) throws {
        try conntrack.deleteEntries(mark: mark, mask: mask, ipv6: ipv6)
    }
}

final class EgressRouting {
    static let mainRulePriority: UInt32 = 4900
    static let egressRulePriority: UInt32 = 4901

    var policy: EgressPolicy
    private(set) var marks: EgressMarks
    private let logger: Logger
    private let kernel: EgressKernel
    private var baseRules: [RouteTables.Rule] = []
    /// The 4901 rule installed per family.
    private var installed: [EgressPolicy.Family: RouteTables.Rule] = [:]

    /// `kernel`: nil is the live one (netlink sockets opened here).
    init(holddownSeconds: Double, marks: EgressMarks, logger: Logger, kernel: EgressKernel? = nil) throws {
        policy = EgressPolicy(holddownNanos: UInt64(holddownSeconds * 1e9))
        self.marks = marks
        self.logger = logger
        self.kernel = try kernel ?? LiveEgressKernel()
    }

    static let mainTable: UInt32 = 254

    /// Rules a run that was killed left behind: the main-table rule at 4900 and any rule at 4901
    /// that looks up one of braid's tables.
    static func leftoverRules(_ rules: [RouteTables.Rule], tables: Set<UInt32>) -> [RouteTables.Rule] {
        rules.filter {
            ($0.priority == mainRulePriority && $0.table == mainTable && $0.suppressPrefixLength == 0
                && $0.source == nil && $0.fwmark == nil)
                || ($0.priority == egressRulePriority && tables.contains($0.table))
        }
    }

    /// Removes what an earlier run left, then installs the main-table rules. `tables`: every table
    /// braid uses or used (the state file's).
    func install(tables: Set<UInt32>) throws {
        let stale = Self.leftoverRules(try kernel.rules(), tables: tables)
        for rule in stale { try kernel.delete(rule) }
        if !stale.isEmpty {
            logger.notice("removed egress rules an earlier run left", metadata: ["rules": "\(stale.count)"])
        }
        for v6 in [false, true] {
            let rule = RouteTables.Rule(
                ipv6: v6, priority: Self.mainRulePriority, table: Self.mainTable, suppressPrefixLength: 0)
            try kernel.add(rule)
            baseRules.append(rule)
        }
    }

    /// Puts back a rule someone deleted (by hand, or a network script flushing rules): called by
    /// the control loop's periodic sweep. One dump of the rules when nothing is missing.
    func mend() {
        do {
            let present = Set(try kernel.rules())
            for rule in baseRules + installed.values where !present.contains(rule) {
                try kernel.add(rule)
                logger.notice("egress rule put back", metadata: ["rule": "\(rule)"])
            }
        } catch {
            logger.warning("cannot check the egress rules", metadata: ["error": "\(error)"])
        }
    }

    /// Applies the policy's verdict: `candidates` in configuration order, `tables` each uplink's
    /// routing table. Logs each move.
    func steer(_ candidates: [EgressPolicy.Candidate], tables: [String: UInt32], now: UInt64) {
        let moves = policy.decide(candidates, now: now)
        // Each family's rule follows the current choice, also when a reload moved its table.
        for family in EgressPolicy.Family.allCases {
            point(family, table: policy.current[family].flatMap { tables[$0] })
        }
        for move in moves {
            logger.notice(
                "traffic braid does not relay moved",
                metadata: ["family": "\(move.family)", "from": "\(move.from ?? "none")", "to": "\(move.to ?? "none")"])
            guard let from = move.from, let mark = marks.mark(from) else { continue }
            do {
                try kernel.deleteConntrack(mark: mark, mask: EgressMarks.mask, ipv6: move.family == .ipv6)
            } catch {
                logger.warning(
                    "cannot delete the NAT flows of the uplink left; they re-map when they time out",
                    metadata: ["uplink": "\(from)", "error": "\(error)"])
            }
        }
    }

    /// Makes the family's 4901 rule look up `table`, or removes it (nil).
    private func point(_ family: EgressPolicy.Family, table: UInt32?) {
        let old = installed[family]
        guard old?.table != table else { return }
        if let table {
            let rule = RouteTables.Rule(ipv6: family == .ipv6, priority: Self.egressRulePriority, table: table)
            do {
                try? kernel.delete(rule)  // left by hand or by a crashed run
                try kernel.add(rule)
                installed[family] = rule
            } catch {
                logger.warning("cannot install the egress rule", metadata: ["rule": "\(rule)", "error": "\(error)"])
                return
            }
        } else {
            installed[family] = nil
        }
        if let old {
            do { try kernel.delete(old) } catch { logger.warning("\(error)") }
        }
    }

    /// The uplinks whose LAN flows Interception marks and NATs: every configured uplink's device,
    /// with its mark.
    func natUplinks(_ uplinks: [UplinkConfig]) -> [Interception.Egress.Uplink] {
        uplinks.compactMap { u in marks.assign(u.name).map { Interception.Egress.Uplink(device: u.device, mark: $0) } }
    }

    /// Gives up the mark of an uplink a reload removed (after the move away from it).
    func release(_ name: String) { marks.release(name) }

    /// Removes every rule; keeps going past failures.
    func remove() {
        for rule in installed.values {
            do { try kernel.delete(rule) } catch { logger.warning("\(error)") }
        }
        installed = [:]
        for rule in baseRules.reversed() {
            do { try kernel.delete(rule) } catch { logger.warning("\(error)") }
        }
        baseRules = []
    }
}
