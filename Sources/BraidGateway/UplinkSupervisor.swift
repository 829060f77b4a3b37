import BraidConfig
import BraidCore
import BraidDataPlane
import BraidNetlink
import BraidStatus
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The gateway's control loop, on its own reactor thread: watches rtnetlink, probes every uplink
/// end to end, decides which uplinks are up, and has the UplinkManager make the kernel follow.
/// Publishes the preferred source address for new connections' first subflow, and is the
/// userspace MPTCP path manager: follows the kernel's connection events and opens, closes and
/// prioritises each connection's subflows as SubflowPlanner decides.
final class UplinkSupervisor {
    /// What the control loop keeps per uplink: its probe and what the probes and subflows say.
    struct Watch {
        var health: UplinkHealth
        /// ICMP echo identifier of the uplink's probes, its own within the process.
        let probeID: UInt16
        var probe: EchoProbe?
        /// The address the probe socket is bound to, and the concentrator address it probes (of
        /// the same family: health is judged per family, on the path subflows take).
        var probeSource: IPAddress?
        var probeTarget: IPAddress?
        /// Why the uplink's path is reported as breaking MPTCP, or nil.
        var mptcpFailing: String?
    }

    /// Replaced by a reload (see UplinkSupervisor+Reload).
    var config: GatewayConfig
    let logger: Logger
    let manager: UplinkManager
    let reactor: Reactor
    private let monitor: LinkMonitor
    private let mptcpEvents: MPTCPEventMonitor
    private let pathManager: MPTCPPathManager
    /// The established subflows, from the kernel (nil: no sock_diag; /proc/net/tcp then).
    private let socketTable: TCPSocketTable?
    var planner: SubflowPlanner
    /// By uplink name: an uplink added or removed by a reload leaves the others' state alone.
    var watches: [String: Watch] = [:]
    private var probesMade = 0
    private var sequence: UInt16 = 0
    private var pendingRefresh: Set<String> = []
    private var refreshScheduled = false
    var stopped = false
    let preferredSource = PreferredSource()
    /// Routes what braid does not relay (UplinkSupervisor+Egress); nil in tests.
    var egress: EgressRouting?
    /// The uplinks' data caps (UplinkSupervisor+Quota); nil until started.
    var quotas: QuotaKeeper?
    /// Called after an uplink went down or came up (the status page publishes at once).
    var onTransition: (() -> Void)?
    /// The concentrator's addresses; `setServers` replaces them (a name resolved anew, an
    /// announcement on the control channel).
    private(set) var servers: ConcentratorAddresses
    /// Overflow and share steering (UplinkSupervisor+Steering): the uplinks it holds back as
    /// backup, and the shares the concentrator pushed for this gateway's class, by uplink name.
    var steering = SteeringController()
    var steeringHeld: Set<String> = []
    var classShares: [String: UInt8] = [:]

    init(
        config: GatewayConfig, servers: ConcentratorAddresses, manager: UplinkManager, reactor: Reactor,
        logger: Logger
    ) throws {
        self.config = config
        self.servers = servers
        self.manager = manager
        self.reactor = reactor
        self.logger = logger
        monitor = try LinkMonitor()
        mptcpEvents = try MPTCPEventMonitor()
        pathManager = try MPTCPPathManager()
        socketTable = try? TCPSocketTable()
        planner = SubflowPlanner(
            servers: servers, maxSubflows: Int(config.maxSubflows) + 1, judgedPort: config.port,
            joinDelayNanos: Self.joinDelayNanos)
        for u in config.uplinks { watches[u.name] = makeWatch() }
    }

    /// How long a new connection runs on its first subflow before it is given the others
    /// (`SubflowPlanner.joinDelayNanos` says why): longer than most short exchanges take over an
    /// uplink with tens of milliseconds of round trip, short against any transfer that gains from
    /// a second uplink.
    static let joinDelayNanos: UInt64 = 100_000_000

    /// A new uplink's state: up until its probes say otherwise, as at start.
    func makeWatch() -> Watch {
        // The pid in the high bits keeps two gateways on one host (tests) from taking each
        // other's echo replies.
        let id = UInt16(truncatingIfNeeded: (Int(getpid()) << 4) &+ probesMade)
        probesMade += 1
        let health = UplinkHealth(
            downAfterNanos: UInt64(config.downAfter) * 1_000_000, upAfter: Int(config.upAfter), now: monotonicNanos())
        return Watch(health: health, probeID: id)
    }

    /// Subscribes first, then reads the state, so no change between the two is missed. Runs on
    /// the reactor thread.
    func start() throws {
        try reactor.register(monitor.fd, events: Reactor.readable, handler: ReactorCallback { [weak self] _, _ in self?.netlinkReadable() })
        try reactor.register(
            mptcpEvents.fd, events: Reactor.readableOnce,
            handler: ReactorCallback { [weak self] _, _ in self?.mptcpEventsArrived() })
        // Before the first pass: an uplink over its cap starts in the cap's role.
        try startQuotas()
        for u in manager.uplinks { update(u.name) }
        publishSource()
        steerEgress()
        scheduleProbeTick()
        scheduleSweep()
        scheduleSubflowTick()
        scheduleSteeringTick()
    }

    func stop() {
        stopped = true
        quotas?.save()
        for name in watches.keys {
            watches[name]?.probe?.close()
            watches[name]?.probe = nil
        }
        // The netlink sockets close their descriptors themselves.
        reactor.deregister(monitor.fd)
        reactor.deregister(mptcpEvents.fd)
    }

    // MARK: events

    private func netlinkReadable() {
        let events = monitor.drain()
        for e in events {
            switch e {
            case .overrun:
                logger.warning("netlink events lost; re-reading every uplink")
                pendingRefresh.formUnion(manager.uplinks.map(\.name))
            case .link(let ifindex, _, _, _), .address(let ifindex, _):
                pendingRefresh.formUnion(names(of: ifindex))
            case .route(let ifindex, let table, _):
                // Main-table default routes carry learned next hops; our own tables get flushed.
                if let ifindex { pendingRefresh.formUnion(names(of: ifindex)) }
                if let u = manager.uplinks.first(where: { $0.table == table }) { pendingRefresh.insert(u.name) }
            }
        }
        // Coalesce a burst (a link going down sends its routes and addresses one by one).
        if !pendingRefresh.isEmpty && !refreshScheduled {
            refreshScheduled = true
            reactor.schedule(afterNanos: 20_000_000) { [weak self] in
                guard let self, !self.stopped else { return }
                self.refreshScheduled = false
                let todo = self.pendingRefresh
                self.pendingRefresh = []
                // In configuration order; a name a reload removed meanwhile is skipped.
                for u in self.manager.uplinks where todo.contains(u.name) { self.update(u.name) }
                self.publishSource()
            }
        }
    }

    private func names(of ifindex: UInt32) -> [String] {
        // An unknown ifindex may be an uplink device that was just created: match by name too.
        var out = manager.uplinks.filter { $0.ifindex == ifindex }
        if out.isEmpty {
            out = manager.uplinks.filter { RouteTables.interfaceIndex($0.config.device) == ifindex }
        }
        return out.map(\.name)
    }

    /// Re-reads an uplink, adjusts health for carrier and address, keeps its probe socket
    /// matching its address, and applies.
    func update(_ name: String) {
        manager.refresh(name)
        guard let u = manager[name], watches[name] != nil else { return }
        let now = monotonicNanos()
        if u.config.role != .off && !u.usable {
            let why = u.ifindex == nil ? "device missing" : (!u.carrier ? "no carrier" : "no address")
            if let t = watches[name]?.health.force(down: why, now: now) { transition(name, t) }
        }
        let path = u.usable ? servers.path(from: u.addresses.map(\.address)) : nil
        if u.config.role != .off && u.usable && path == nil {
            let families = Set(servers.all.map { $0.isIPv4 ? "IPv4" : "IPv6" }).sorted().joined(separator: " or ")
            let why = "no \(families.isEmpty ? "known concentrator" : families) address to reach the concentrator"
            if let t = watches[name]?.health.force(down: why, now: now) { transition(name, t) }
        }
        if var w = watches[name], path?.source != w.probeSource || path?.server != w.probeTarget {
            w.probe?.close()
            w.probe = nil
            w.probeSource = path?.source
            w.probeTarget = path?.server
            if let path {
                do {
                    w.probe = try EchoProbe(
                        reactor: reactor, source: path.source, device: u.config.device, target: path.server,
                        identifier: w.probeID
                    ) { [weak self] seq, rtt in self?.replied(name, seq: seq, rtt: rtt) }
                } catch {
                    logger.warning("cannot probe uplink", metadata: ["uplink": "\(u.name)", "error": "\(error)"])
                }
            }
            watches[name] = w
        }
        manager.apply(name)
        replan()
    }

    private func replied(_ name: String, seq: UInt16, rtt: UInt64) {
        if let t = watches[name]?.health.replied(seq: seq, rttNanos: rtt, at: monotonicNanos()) { transition(name, t) }
    }

    private func transition(_ name: String, _ t: UplinkHealth.Transition) {
        guard let u = manager[name] else { return }
        switch t {
        case .wentDown(let reason):
            logger.notice("uplink down", metadata: ["uplink": "\(u.name)", "device": "\(u.config.device)", "reason": "\(reason)"])
        case .cameUp:
            logger.notice(
                "uplink up",
                metadata: [
                    "uplink": "\(u.name)", "device": "\(u.config.device)",
                    "rtt_ms": "\(fixed(Double(watches[name]?.health.rttNanos ?? 0) / 1e6, 2))",
                ])
        }
        manager.apply(name)
        publishSource()
        steerEgress()
        replan()
        onTransition?()
    }

    // MARK: subflows

    /// How long MPTCP events gather after the first of a burst before they are read: every
    /// connection sends three or more, and a wake, a read and a planning pass per event was most
    /// of this thread's work per connection under a connection storm. Nothing waits on them that
    /// is measured in milliseconds (joins wait `joinDelayNanos`, failures are judged in seconds).
    static let mptcpEventBatchNanos: UInt64 = 5_000_000

    /// The event socket is watched one-shot: read the batch shortly, then watch it again.
    private func mptcpEventsArrived() {
        reactor.schedule(afterNanos: Self.mptcpEventBatchNanos) { [weak self] in
            guard let self, !self.stopped else { return }
            self.mptcpReadable()
            do {
                // Events that came after the last read make the socket readable at once again.
                try self.reactor.rearm(self.mptcpEvents.fd, events: Reactor.readableOnce)
            } catch {
                self.logger.error("cannot watch MPTCP events again; retrying in a second", metadata: ["error": "\(error)"])
                self.reactor.schedule(afterNanos: 1_000_000_000) { [weak self] in self?.mptcpEventsArrived() }
            }
        }
    }

    private func mptcpReadable() {
        var touched: Set<UInt32>? = []
        var batch: [MPTCPEvent] = []
        for e in mptcpEvents.drain() {
            switch e {
            case .overrun:
                planner.handle(batch)
                batch = []
                logger.warning("MPTCP events lost; asking again for every missing subflow")
                planner.forgetAttempts()
                touched = nil  // any connection may have changed
            case .mptcp(let event):
                touched?.insert(event.token)
                logger.trace("mptcp event", metadata: ["event": "\(event)"])
                if event.kind == .subflowClosed, let error = event.error, error != 0 {
                    logger.debug("subflow closed", metadata: ["event": "\(event)"])
                }
                batch.append(event)
            }
        }
        planner.handle(batch)
        replan(only: touched)
    }

    /// The uplink addresses that can carry subflows to the concentrator, healthy or not. Backup
    /// uplinks' subflows are marked backup, and so are those steering holds back.
    private func paths() -> [SubflowPlanner.Path] {
        manager.uplinks.compactMap { u in
            guard u.config.role != .off, u.usable, let path = servers.path(from: u.addresses.map(\.address)),
                let w = watches[u.name]
            else { return nil }
            return SubflowPlanner.Path(
                address: path.source, server: path.server, ifindex: u.ifindex ?? 0, backup: u.config.role == .backup || steeringHeld.contains(u.name),
                healthy: w.health.state == .up, subflows: u.config.subflows)
        }
    }

    /// `only`: the connections to look at (those events were about); nil looks at all.
    func replan(only: Set<UInt32>? = nil) {
        defer {
            // A pass over some connections (events) changes what there is to report only if it
            // changed a path's record; a full pass reports whatever the cause.
            if only == nil || planner.recordsVersion != reportedRecordsVersion {
                reportedRecordsVersion = planner.recordsVersion
                reportPaths()
            }
            scheduleJoins()
        }
        let actions = planner.plan(paths: paths(), now: monotonicNanos(), only: only)
        // New subflows go to the kernel in one batch: a burst of connections asks for two or
        // three each, and a round trip per request kept this thread from the events.
        var creates: [MPTCPPathManager.SubflowRequest] = []
        for action in actions {
            if case .create(let token, let local, let id, let backup, let ifindex, let remote) = action {
                creates.append(.init(token: token, local: local, localID: id, backup: backup, ifindex: ifindex, remote: remote))
            }
        }
        createSubflows(creates)
        for action in actions {
            do {
                switch action {
                case .create:
                    break
                case .remove(let token, let id, let subflows):
                    do {
                        try pathManager.removeAddress(token: token, localID: id)
                    } catch let e as NetlinkError where e.errno == EINVAL || e.errno == ENOENT {
                        // The kernel does not know the id for this address (a subflow it opened
                        // itself): closing the subflows below is all there is to do.
                    }
                    // The userspace path manager's REMOVE only sends RM_ADDR, once, in an ACK
                    // that a full queue may drop; the subflow itself stays open. Closed here, it
                    // leaves a FIN that its orphaned socket resends until the path is back, so the
                    // concentrator frees its side even when the RM_ADDR was lost: otherwise that
                    // side stays established and counts against the connection's limit of joins
                    // there, and the uplink's later joins are refused (the soak's join storm).
                    for s in subflows {
                        do {
                            try pathManager.destroySubflow(token: token, local: s.local, remote: s.remote)
                        } catch let e as NetlinkError where e.errno == ENOENT || e.errno == EINVAL || e.errno == ESRCH {
                            logger.debug("\(e)")  // already gone; the next one may not be
                            continue
                        }
                        logger.info(
                            "subflow closed on a down uplink",
                            metadata: ["token": "\(token)", "local": "\(s.local)", "id": "\(id)"])
                    }
                case .setBackup(let token, let s, let backup):
                    try pathManager.setBackup(token: token, local: s.local, remote: s.remote, backup: backup)
                }
            } catch let e as NetlinkError where e.errno == ENOENT || e.errno == EINVAL || e.errno == ESRCH {
                // The connection or subflow is already gone; its event is on its way.
                logger.debug("\(e)")
            } catch {
                logger.info("\(error)")
            }
        }
    }

    /// When the next pass for connections waiting out the join delay is set to run, if one is.
    private var joinPassAt: UInt64?

    /// Runs a pass when the first connection waiting out the join delay is due: one timer for
    /// all of them, each pass taking every connection due by then.
    private func scheduleJoins() {
        guard let due = planner.nextJoinDue, joinPassAt.map({ due < $0 }) ?? true else { return }
        joinPassAt = due
        let now = monotonicNanos()
        reactor.schedule(afterNanos: due > now ? due - now : 0) { [weak self] in
            guard let self, !self.stopped, self.joinPassAt == due else { return }
            self.joinPassAt = nil
            self.replan(only: [])
        }
    }

    /// Asks the kernel for `requests` in one batch and follows up each answer as `replan` does
    /// for the other commands.
    private func createSubflows(_ requests: [MPTCPPathManager.SubflowRequest]) {
        guard !requests.isEmpty else { return }
        let results: [Int32]
        do {
            results = try pathManager.createSubflows(requests)
        } catch {
            // Not sent or not answered: the attempts stay on record and are retried, as for a
            // subflow that never came.
            logger.info("\(error)")
            return
        }
        for (r, errno) in zip(requests, results) {
            switch errno {
            case 0:
                logger.debug("subflow requested", metadata: ["token": "\(r.token)", "local": "\(r.local)", "id": "\(r.localID)"])
            case EINVAL where r.localID == 0:
                // A kernel that takes no id 0 for a new subflow (or a connection already gone,
                // whose event is on its way): the first address gets an id of its own.
                logger.debug("\(Self.createError(r, errno))")
                planner.sharedIDRefused(token: r.token, address: r.local)
            case ENOENT, EINVAL, ESRCH:
                // The connection is already gone; its event is on its way.
                logger.debug("\(Self.createError(r, errno))")
            case ENOTCONN:
                // Established but not yet fully (the peer has not acknowledged MPTCP on data yet):
                // not a failure of the path; asked again at the next pass.
                planner.notYet(token: r.token, address: r.local)
            default:
                logger.info("\(Self.createError(r, errno))")
            }
        }
    }

    private static func createError(_ r: MPTCPPathManager.SubflowRequest, _ errno: Int32) -> NetlinkError {
        NetlinkError(
            "create subflow \(r.local) -> \(r.remote) of MPTCP connection \(String(r.token, radix: 16))", errno: errno)
    }

    /// Once a second: checks the subflows against the kernel's socket table (a subflow reset
    /// for a protocol violation goes without an event) and retries what failed or was never
    /// answered.
    private func scheduleSubflowTick() {
        reactor.schedule(afterNanos: planner.retryNanos) { [weak self] in
            guard let self, !self.stopped else { return }
            if !self.planner.connections.isEmpty {
                self.planner.reconcile(established: self.establishedSubflows())
            }
            self.replan()
            self.scheduleSubflowTick()
        }
    }

    /// The established TCP sockets to the concentrator: from sock_diag, which skips the other
    /// states in the kernel, else from /proc/net/tcp.
    private func establishedSubflows() -> Set<SubflowPlanner.Subflow> {
        if let socketTable {
            let servers = self.servers
            var live: Set<SubflowPlanner.Subflow> = []
            do {
                try socketTable.forEachEstablished { c in
                    if servers.contains(c.remote.address) { live.insert(.init(local: c.local, remote: c.remote)) }
                }
                return live
            } catch {
                logger.debug("\(error); reading /proc/net/tcp instead")
            }
        }
        return EstablishedSubflows.read(servers: servers)
    }

    /// The planner's `recordsVersion` at the last `reportPaths`.
    private var reportedRecordsVersion: UInt64?

    /// Logs when an uplink's path starts or stops breaking MPTCP.
    private func reportPaths() {
        for u in manager.uplinks {
            guard let address = servers.path(from: u.addresses.map(\.address))?.source, let before = watches[u.name]
            else { continue }
            let failing = planner.breaksMPTCP(address)
            if let failing, before.mptcpFailing == nil {
                logger.warning(
                    "uplink breaks MPTCP: its subflows fail although its probes pass (a middlebox removing MPTCP options?); sessions go on over the other uplinks",
                    metadata: [
                        "uplink": "\(u.name)", "device": "\(u.config.device)", "failures": "\(failing.failures)",
                        "last": "\(failing.lastFailure ?? "")",
                    ])
            } else if failing == nil, before.mptcpFailing != nil {
                logger.notice("uplink carries MPTCP subflows again", metadata: ["uplink": "\(u.name)"])
            }
            watches[u.name]?.mptcpFailing = failing?.lastFailure
        }
    }

    // MARK: timers

    private func scheduleProbeTick() {
        reactor.schedule(afterNanos: UInt64(config.probeInterval) * 1_000_000) { [weak self] in
            guard let self, !self.stopped else { return }
            self.probeTick()
            self.scheduleProbeTick()
        }
    }

    private func probeTick() {
        let now = monotonicNanos()
        sequence &+= 1
        for u in manager.uplinks {
            guard u.config.role != .off, u.usable, let w = watches[u.name] else { continue }
            if let probe = w.probe {
                probe.send(sequence: sequence)
                watches[u.name]?.health.sent(seq: sequence, at: now)
            }
            if let t = watches[u.name]?.health.tick(now: now) { transition(u.name, t) }
        }
        // Also when nothing changed health: a hold-down may have run out.
        steerEgress()
    }

    /// Every 5 s, a full pass: whatever an event did not tell us (a route flushed by someone
    /// else, a rule deleted by hand) is put back.
    private func scheduleSweep() {
        reactor.schedule(afterNanos: 5_000_000_000) { [weak self] in
            guard let self, !self.stopped else { return }
            for u in self.manager.uplinks { self.update(u.name) }
            self.publishSource()
            self.egress?.mend()
            self.scheduleSweep()
        }
    }

    /// New connections start on the first healthy active uplink, else the first healthy overflow
    /// one, else the first healthy backup. The first subflow dials the concentrator address of
    /// that uplink's family; with no healthy uplink, the first known address from whatever source
    /// the routing table picks.
    func publishSource() {
        var choice: TransparentForwarder.FirstSubflow?
        for role in [UplinkRole.active, .overflow, .backup] where choice == nil {
            for u in manager.uplinks
            where u.config.role == role && u.usable && watches[u.name]?.health.state == .up {
                if let path = servers.path(from: u.addresses.map(\.address)) {
                    choice = .init(source: path.source, server: path.server, bothFamilies: servers.bothFamilies)
                    break
                }
            }
        }
        preferredSource.set(
            choice ?? servers.all.first.map { .init(source: nil, server: $0, bothFamilies: servers.bothFamilies) })
    }

    /// Whether the probes reach the concentrator in use: true when some uplink does, false when
    /// every uplink that can probe it (carrier, address, a family in common) is down, nil when no
    /// uplink can probe at all (then another concentrator would be no better).
    func concentratorReachable() -> Bool? {
        var judged = false
        for u in manager.uplinks where u.config.role != .off && u.usable {
            guard let w = watches[u.name], w.probe != nil else { continue }
            if w.health.state == .up { return true }
            judged = true
        }
        return judged ? false : nil
    }

    /// Moves to another concentrator: what the probes said was about the last one, so every
    /// uplink starts again as at start (up, until its probes to the new one say otherwise).
    func useConcentrator(_ new: ConcentratorAddresses) {
        for name in watches.keys {
            let old = watches[name]!
            var fresh = makeWatch()
            fresh.mptcpFailing = old.mptcpFailing
            old.probe?.close()
            watches[name] = fresh
        }
        servers = ConcentratorAddresses(configured: [])
        setServers(new)
        steerEgress()
        onTransition?()
    }

    /// Takes the concentrator's addresses anew: probes move to the new address of their family,
    /// and running connections get subflows on uplinks that could not reach it before.
    func setServers(_ new: ConcentratorAddresses) {
        guard new != servers else { return }
        logger.notice(
            "concentrator addresses", metadata: ["configured": "\(new.configured)", "announced": "\(new.announced)"])
        servers = new
        planner.servers = new
        for u in manager.uplinks { update(u.name) }
        publishSource()
    }

    // MARK: status

    /// The gateway's status document: every uplink with its health, and what the caller adds
    /// (the forwarder's sessions and bytes, the control channel). Runs on the control reactor,
    /// which owns the uplinks' state.
    func status(sessions: SessionCounters, bytes: ByteMeter?, control: GatewayControlStatus) -> GatewayStatus {
        let now = monotonicNanos()
        let wall = Double(wallClockMillis()) / 1000
        let subflows = planner.subflowsByAddress
        let uplinks = manager.uplinks.compactMap { u -> UplinkStatus? in
            guard let w = watches[u.name] else { return nil }
            let h = w.health
            return UplinkStatus(
                name: u.name, device: u.config.device, role: "\(u.config.role)",
                state: u.config.role == .off ? "off" : h.state.rawValue,
                since: rounded(wall - Double(now &- h.since) / 1e9, 3), carrier: u.carrier,
                addresses: u.addresses.map { "\($0.address)" },
                rttMs: h.smoothedRTTNanos.map { rounded(Double($0) / 1e6, 2) }, loss: h.loss.map { rounded($0, 3) },
                subflows: u.addresses.reduce(0) { $0 + (subflows[$1.address] ?? 0) },
                mptcp: w.mptcpFailing.map { "failing: \($0)" } ?? "ok",
                txBytes: Self.counter(u.config.device, "tx_bytes"), rxBytes: Self.counter(u.config.device, "rx_bytes"),
                // The family the uplink reaches the concentrator over (nil: none in common).
                family: servers.path(from: u.addresses.map(\.address)).map { $0.server.isIPv4 ? "ipv4" : "ipv6" },
                share: steering.share(u.name).map { rounded($0, 1) }, shareCap: effectiveShare(u.config).map { Int($0) },
                overflow: u.config.role == .overflow ? (steering.overflow(u.name) ?? .standby).rawValue : nil,
                quota: quotaStatus(u.name))
        }
        let s = sessions.snapshot
        return GatewayStatus(
            concentrator: config.server.address.map { "\(Endpoint(address: $0, port: config.port))" }
                ?? "\(config.server.description):\(config.port)",
            sessions: SessionCount(active: s.active, total: s.total), control: control, uplinks: uplinks,
            bytes: bytes.map { ByteCount(up: $0.up, down: $0.down) }, time: rounded(wall, 3),
            concentratorAddresses: servers.all.map { "\($0)" })
    }

    /// Each uplink's device byte counters, in configuration order (the status page's graphs).
    func uplinkCounters() -> [(name: String, tx: UInt64, rx: UInt64)] {
        manager.uplinks.map { u in
            (u.name, Self.counter(u.config.device, "tx_bytes"), Self.counter(u.config.device, "rx_bytes"))
        }
    }

    static func counter(_ device: String, _ name: String) -> UInt64 {
        readFirstLine("/sys/class/net/\(device)/statistics/\(name)").flatMap { UInt64($0) } ?? 0
    }
}

/// The source and concentrator address of new connections' first subflow, written by the
/// control loop and read by every data reactor at each accept.
public final class PreferredSource {
    private let lock = Mutex()
    private var first: TransparentForwarder.FirstSubflow?

    func set(_ f: TransparentForwarder.FirstSubflow?) { lock.withLock { first = f } }
    public func get() -> TransparentForwarder.FirstSubflow? { lock.withLock { first } }
}

/// Established TCP sockets to the concentrator, from /proc/net/tcp and tcp6 (MPTCP subflows
/// are ordinary TCP sockets there): the fallback when sock_diag is missing (TCPSocketTable).
enum EstablishedSubflows {
    static func read(servers: ConcentratorAddresses) -> Set<SubflowPlanner.Subflow> {
        var out: Set<SubflowPlanner.Subflow> = []
        for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
            guard let f = fopen(file, "r") else { continue }
            defer { fclose(f) }
            var line = [CChar](repeating: 0, count: 512)
            while fgets(&line, 512, f) != nil {
                let fields = String(cString: line).split(separator: " ")
                guard fields.count > 3, fields[3] == "01" else { continue }  // ESTABLISHED
                guard let local = endpoint(fields[1]), let remote = endpoint(fields[2]),
                    servers.contains(remote.address)
                else { continue }
                out.insert(SubflowPlanner.Subflow(local: local, remote: remote))
            }
        }
        return out
    }

    /// "0200A8C0:1F40": the address as in-memory 32-bit words in hex (little-endian here), then the port.
    static func endpoint(_ field: Substring) -> Endpoint? {
        let parts = field.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1], radix: 16) else { return nil }
        let hex = parts[0]
        var bytes: [UInt8] = []
        var i = hex.startIndex
        while i < hex.endIndex {
            let j = hex.index(i, offsetBy: 8, limitedBy: hex.endIndex) ?? hex.endIndex
            guard let word = UInt32(hex[i..<j], radix: 16) else { return nil }
            bytes += [UInt8(word & 0xff), UInt8((word >> 8) & 0xff), UInt8((word >> 16) & 0xff), UInt8(word >> 24)]
            i = j
        }
        guard var a = IPAddress(bytes: bytes) else { return nil }
        if case .v6(let b) = a, let mapped = IPAddress(mappedIPv6Bytes: b) { a = mapped }
        return Endpoint(address: a, port: port)
    }
}

/// `x` with `digits` decimals, without Foundation.
func fixed(_ x: Double, _ digits: Int) -> String {
    guard x.isFinite else { return "null" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let n = Int64((abs(x) * scale).rounded())
    let whole = n / Int64(scale)
    var frac = String(n % Int64(scale))
    frac = String(repeating: "0", count: max(0, digits - frac.count)) + frac
    return (x < 0 && n != 0 ? "-" : "") + "\(whole)" + (digits > 0 ? "." + frac : "")
}
