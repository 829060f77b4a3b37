import BraidConfig
import BraidCore
import BraidDataPlane
import BraidMetrics
import BraidStatus
import BraidTLS
import BraidWire
import Logging

/// The gateway role: intercepts LAN TCP, carries each connection over MPTCP to the
/// concentrator behind an authenticated Convert message, and relays. A control reactor watches
/// and probes the uplinks; the data reactors (one per core) relay.
public final class GatewayService {
    /// The running configuration; a reload replaces it (GatewayService+Reload).
    var config: GatewayConfig
    /// The file a reload (SIGHUP, `braid reload`) reads again; nil refuses reloads.
    public var configFile: String?
    let logger: Logger
    private var data: ReactorGroup?
    var control: ReactorGroup?
    private var forwarder: TransparentForwarder?
    /// The forwarder, for the status document's sessions and bytes.
    var forwarderForStatus: TransparentForwarder? { forwarder }
    private var uplinks: UplinkManager?
    var supervisor: UplinkSupervisor?
    private var statusServer: LocalQueryServer?
    var interception: Interception?
    /// Routes what braid does not relay; its rules go before the uplinks' tables at stop.
    var egress: EgressRouting?
    /// The concentrator in use; nil until the first decision (with `option server`, the one).
    var controlClient: ControlClient? { links[choice?.current.host ?? config.server]?.client }
    /// One per concentrator of `list server`: its control channel and keys (control reactor).
    var links: [ConcentratorHost: ConcentratorLink] = [:]
    /// Which concentrator new sessions go to (control reactor).
    var choice: ConcentratorChoice?
    /// The keys of the concentrator in use, read by the data reactors at each connection.
    let activeKeys = ActiveKeys()
    /// Every concentrator's addresses, read by the control channels' threads at each attempt.
    let directory = ConcentratorDirectory()
    /// The TLS files' context per concentrator name is made here (nil without ca, cert and key).
    var tlsFiles: TLSFiles?
    /// The `/metrics` listener, when `metrics_listen` is set.
    var metrics: MetricsEndpoint?
    /// The newest status document, made each second on the control reactor for the metrics
    /// listener's thread, which cannot read the uplinks' state itself.
    let published = PublishedStatus()
    /// The operator's rules in force (pushed by the concentrator, or kept from the last run).
    var operatorRules: [ControlMessage.OperatorRule] = []
    /// The pre-shared key, when `psk_file` is set: every concentrator's keys fall back to it.
    var preshared: [UInt8]?
    /// The kernel settings changed and their values before: given back at stop, also after a crash.
    private var state: KernelStateFile?
    /// The LAN status page (`web_listen`); its listener comes and goes with the LAN address.
    var statusPage: StatusPage?
    /// The relay's session counters, read by the status document.

    /// What the gateway uses once started: CAP_NET_ADMIN for netlink (routes, rules, the path
    /// manager's subflows), nftables and, when not uid 0, the sysctls it gives back at stop;
    /// CAP_NET_RAW for the ICMP probes (raw sockets bound to a device), opened again when an
    /// uplink comes back or a reload adds one. Listeners and the file limit are set up by then.
    public static let capabilitiesAfterStart: Capabilities = [.netAdmin, .netRaw]

    public init(config: GatewayConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    /// Installs kernel state and starts listening. On failure, whatever was installed is removed,
    /// and so is an interception table a killed run left: it holds LAN TCP for the restarted
    /// gateway, and a gateway that cannot start must not keep holding it.
    public func start() throws {
        do {
            try startSteps()
        } catch {
            Interception.removeLeftover()
            throw error
        }
    }

    private func startSteps() throws {
        let key = config.pskFile.isEmpty ? nil : try PresharedKey.load(path: config.pskFile)
        preshared = key
        // The TLS contexts first: a missing or unreadable certificate stops the start here.
        for host in config.servers { _ = try tlsContext(for: host) }
        // A name that does not resolve stops the start here, with the resolver's reason (with
        // several concentrators, only when none resolves: the others are looked up again later).
        let resolved = try Self.resolveServers(config.servers)
        var choice = ConcentratorChoice(
            hosts: config.servers, resolved: resolved, holddownNanos: Self.nanos(config.serverHolddown),
            confirmNanos: Self.confirmNanos(config))
        if choice.current.addresses.all.isEmpty, config.servers.count > 1 {
            // The most preferred one does not resolve: start on the first that does.
            choice.channel(choice.current.host, up: false, reason: "does not resolve", now: monotonicNanos())
        }
        self.choice = choice
        for (host, addresses) in resolved { directory.set(host, ConcentratorAddresses(configured: addresses)) }
        // Where the uplinks' probes start: the preferred concentrator, or one that resolved.
        let configured =
            choice.current.addresses.all.isEmpty
            ? (config.servers.lazy.compactMap { resolved[$0] }.first { !$0.isEmpty } ?? [])
            : choice.current.addresses.configured
        let server = Endpoint(address: configured[0], port: config.port)
        let state = try KernelStateFile(
            path: KernelStateFile.path(directory: KernelStateFile.directory(of: config.statusSocket), role: "gateway"),
            role: "gateway")
        self.state = state
        if state.recovered {
            logger.warning(
                "the last run did not stop cleanly; repairing what it left", metadata: ["state": "\(state.path)"])
        }
        let limit = raiseFileLimit()
        do {
            if config.fastOpen, let change = try KernelSettings.enableFastOpen(server: false, state: state) {
                logger.notice(
                    "enabled TCP Fast Open client side",
                    metadata: [KernelSettings.fastOpen: "\(change.old) -> \(change.new)"])
            }
            // First, while descriptor numbers are low (see Interception).
            let egress = try EgressRouting(
                holddownSeconds: config.holddown, marks: EgressMarks(uplinks: config.uplinks.map(\.name)),
                logger: logger)
            var settings = Interception.Settings(
                lanDevices: config.lanDevices, listenerPort: config.tproxyPort, fwmark: config.fwmark,
                egress: egressSettings(config, egress), steering: steeringSettings(config, egress),
                lanOnlyPorts: config.webListen.port.map { [$0] } ?? [])
            settings.operatorRules = OperatorRules.statements(keptOperatorRules())
            let table = try Interception(settings)
            let manager = try UplinkManager(config: config, state: state, logger: logger)
            uplinks = manager
            try manager.installBase()
            try egress.install(tables: Set(state.record.tables).union(config.uplinkTables.values))
            self.egress = egress
            let control = try ReactorGroup(count: 1, logger: logger)
            self.control = control
            let supervisor = try UplinkSupervisor(
                config: config, servers: ConcentratorAddresses(configured: configured), manager: manager,
                reactor: control.reactors[0], logger: logger)
            self.supervisor = supervisor
            supervisor.egress = egress
            // The first pass runs here, before the threads start, so the uplinks are in place
            // before the first LAN connection is accepted.
            try supervisor.start()

            let data = try ReactorGroup(logger: logger)
            self.data = data
            let source = supervisor.preferredSource
            let forwarder = TransparentForwarder(
                config: .init(
                    server: server, listenerPort: config.tproxyPort, fastOpen: config.fastOpen,
                    congestionControl: usableCongestionControl(config.congestionControl, logger: logger)),
                logger: logger, selectSource: { source.get() }
            ) { [activeKeys] destination, dialled in
                guard let authenticator = activeKeys.get()?.current(server: dialled) else {
                    throw TransparentForwarder.NotReady(
                        "no session key yet: the control channel to the concentrator is not up")
                }
                return try ConvertClientHandshake.request(
                    to: destination, authenticator: authenticator, nowMillis: wallClockMillis(),
                    nonce: SecureRandom.bytes(ConvertAuthentication.nonceSize))
            }
            self.forwarder = forwarder
            try forwarder.start(group: data)
            statusServer = try LocalQueryServer(reactor: control.reactors[0], path: config.statusSocket) {
                [weak self] question in
                guard let self else { return "" }
                if question == "reload" { return self.reloadNow().text }
                return self.statusText()
            }
            startMetrics(on: control.reactors[0])
            let page = StatusPage(logger: logger)
            statusPage = page
            let reactor = control.reactors[0]
            supervisor.onTransition = { [weak self] in
                // An uplink's health changed: the concentrator in use may have gone silent. Judged
                // after the probe pass that saw it, not in its middle, and not a tick later.
                reactor.execute { self?.serverTick() }
                guard let self, self.config.webListen != .off else { return }
                self.statusPage?.publish(document: self.statusText())
            }
            // Before the threads start, like the supervisor's first pass: the page is there at once.
            pageTick(count: 0)
            try control.start()
            try data.start()
            try table.install()
            interception = table
            scheduleResolve()
            for host in config.servers { try openLink(host) }
            activeKeys.set(links[choice.current.host]?.keys)
            scheduleServerTick()
            logger.notice(
                "gateway running",
                metadata: [
                    "concentrator": "\(server)", "lan": "\(config.lanDevices.joined(separator: ","))",
                    "tproxy_port": "\(config.tproxyPort)", "reactors": "\(data.reactors.count)", "nofile": "\(limit.new)",
                    "status": "\(config.statusSocket)",
                ])
        } catch {
            stop()
            throw error
        }
    }

    /// Once a second on the control reactor: the page's document and a counter sample; every
    /// fifth, the listener follows the LAN address (a DHCP or hotplugged LAN, a bind that failed).
    /// With `web_listen off` only the check remains, so a reload can turn the page on.
    private func pageTick(count: Int) {
        guard let page = statusPage, let supervisor else { return }
        if config.webListen != .off {
            page.publish(document: statusText())
            page.record(nanos: monotonicNanos(), counters: supervisor.uplinkCounters())
        }
        if count % 5 == 0 { placeStatusPage() }
        control?.reactors.first?.schedule(afterNanos: 1_000_000_000) { [weak self] in
            self?.pageTick(count: count &+ 1)
        }
    }

    /// Binds the page where `web_listen` says now, or stops it.
    func placeStatusPage() {
        guard let page = statusPage, let uplinks else { return }
        page.serve(at: config.webListen.resolve(lanAddresses: uplinks.addresses(ofDevices: config.lanDevices)))
    }

    /// Removes the nftables table, listeners, routes and rules, and gives back every setting it
    /// changed (the MPTCP path manager, tcp_fastopen) as it was before the first run.
    public func stop() {
        metrics?.stop()
        metrics = nil
        for link in links.values { link.client?.stop() }
        links = [:]
        do { try interception?.remove() } catch { logger.warning("\(error)") }
        interception = nil
        data?.stop()
        data = nil
        forwarder?.stop()
        forwarder = nil
        control?.stop()
        control = nil
        supervisor?.stop()
        supervisor = nil
        statusServer?.close()
        statusServer = nil
        egress?.remove()
        egress = nil
        statusPage?.stop()
        statusPage = nil
        uplinks?.remove()
        uplinks = nil
        if let state {
            let failed = state.restore()
            for error in failed { logger.warning("cannot give a kernel setting back", metadata: ["error": "\(error)"]) }
            if !failed.isEmpty {
                logger.warning("the state file stays for the next start", metadata: ["state": "\(state.path)"])
            }
        }
        state = nil
        logger.notice("gateway stopped; kernel state removed")
    }
}

extension GatewayService {
    /// What the nftables table does to routed LAN traffic under `config`: NAT and marks per uplink,
    /// QUIC refused or not.
    func egressSettings(_ config: GatewayConfig, _ egress: EgressRouting) -> Interception.Egress {
        Interception.Egress(
            uplinks: egress.natUplinks(config.uplinks), markMask: EgressMarks.mask, refuseQUIC: config.quic == .tcp)
    }

    /// The rules chain for `config`; after `egressSettings`, which gives new uplinks their marks.
    func steeringSettings(_ config: GatewayConfig, _ egress: EgressRouting) -> Interception.Steering {
        TrafficRules.steering(config.rules, defaultAction: config.defaultAction, marks: { egress.marks.mark($0) })
    }
}

/// A gateway failure with the reason an operator needs.
struct GatewayError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// The kernel name of the configured congestion control if this process may set it, else nil
/// (the system's default) after saying why: a kernel built without the algorithm must not stop
/// the gateway or its connections.
func usableCongestionControl(_ choice: CongestionControl, logger: Logger) -> String? {
    guard let name = choice.kernelName else { return nil }
    do {
        try Sockets.checkCongestionControl(name)
        return name
    } catch {
        logger.warning(
            "congestion_control not available: data connections keep the system's default",
            metadata: ["congestion_control": "\(name)", "error": "\(error)"])
        return nil
    }
}
