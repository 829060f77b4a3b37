import BraidConfig
import BraidCore
import BraidDataPlane
import BraidMetrics
import BraidNetlink
import BraidStore
import BraidTLS
import BraidWire
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The concentrator role: an MPTCP listener that turns authenticated Convert requests into TCP
/// connections to their destinations and relays them. Policy lives here (which destinations are
/// refused); the data plane does the I/O.
public final class ConcentratorService {
    /// The running configuration; a reload replaces it (ConcentratorService+Reload).
    var config: ConcentratorConfig
    /// The file a reload (SIGHUP, `braid reload`) reads again; nil refuses reloads.
    public var configFile: String?
    let logger: Logger
    private var group: ReactorGroup?
    private var forwarder: ConvertForwarder?
    /// The kernel settings changed and their values before: given back at stop, also after a crash.
    private var state: KernelStateFile?
    /// One thread for the local socket and reloads, off the data reactors.
    var control: ReactorGroup?
    private var statusServer: LocalQueryServer?
    /// Read by every data reactor at each connection; swapped whole by a reload.
    let destinationPolicy: CurrentDestinationPolicy
    /// Subscribers, their session keys, open sessions and rate buckets.
    private(set) var book: SubscriberBook?
    var controlServer: ControlServer?
    /// The shared subscriber store's feed (`store 'postgresql://…'`), set before `start`; nil
    /// with the uci store, whose subscribers come with the file.
    public var feed: (any SubscriberFeed)?
    /// The `/metrics` listener, when `metrics_listen` is set.
    var metrics: MetricsEndpoint?
    /// The operator's rules by class (`config rule` with `option class`), pushed to gateways.
    let operatorRules: OperatorRuleSets

    /// What the concentrator uses once its listeners are bound: CAP_NET_ADMIN only, to give the
    /// MPTCP limits back at stop (generic netlink's admin commands need it) and, when not uid 0,
    /// tcp_fastopen. A reload changes neither listeners nor kernel settings.
    public static let capabilitiesAfterStart: Capabilities = [.netAdmin]

    public init(config: ConcentratorConfig, logger: Logger) {
        self.config = config
        self.logger = logger
        destinationPolicy = CurrentDestinationPolicy(DestinationPolicy(config))
        operatorRules = OperatorRuleSets(config, logger: logger)
    }

    /// Binds the listener and starts the reactors. Throws with a message naming what failed
    /// (key file, bind address).
    public func start() throws {
        // Taken first: a request stamped before this may have been captured before a restart.
        let startedMillis = wallClockMillis()
        let startedNanos = monotonicNanos()
        let key = config.pskFile.isEmpty ? nil : try PresharedKey.load(path: config.pskFile)
        let book = SubscriberBook(config: config, presharedKey: key)
        if key != nil, !config.acceptsPresharedKey {
            logger.notice("pre-shared key refused on the data port: ca, cert and key are set, psk_class is not")
        }
        self.book = book
        if let feed {
            let directory = try feed.start(
                interval: config.accountingInterval,
                update: { [weak self] directory in self?.storeChanged(directory) },
                usage: { book.takeUsage() })
            book.update(directory)
            logger.notice(
                "subscribers read from the store",
                metadata: [
                    "store": "\(config.store)", "subscribers": "\(directory.subscribers.count)",
                    "classes": "\(directory.classes.count)",
                ])
        }
        // The TLS context first: a missing or unreadable certificate stops the start here.
        let tls = try config.tls.map {
            try TLSContext(role: .server, ca: $0.ca, certificate: $0.cert, key: $0.key, crl: $0.crl)
        }
        let state = try KernelStateFile(
            path: KernelStateFile.path(
                directory: KernelStateFile.directory(of: config.statusSocket), role: "concentrator"),
            role: "concentrator")
        self.state = state
        if state.recovered {
            logger.warning(
                "the last run did not stop cleanly; its settings are given back at stop",
                metadata: ["state": "\(state.path)"])
        }
        do {
            if let change = try KernelSettings.enableFastOpen(server: true, state: state) {
                logger.notice(
                    "enabled TCP Fast Open server side",
                    metadata: [KernelSettings.fastOpen: "\(change.old) -> \(change.new)"])
            }
            try acceptSubflows(state: state)
        } catch {
            stop()
            throw error
        }
        // The names a data connection's MAC may be bound to: `identity` alone when set (so two
        // concentrators on one address are told apart), else the certificate's name and the
        // address the connection arrived on (what a gateway's `server_name` defaults to). The
        // certificate's names are its common name and its DNS subjectAltNames: the gateway checks
        // its `server_name` against those.
        let certificateNames = try config.tls.map { try TLSContext.names(ofCertificateAt: $0.cert) } ?? []
        let identities = config.identities.isEmpty ? certificateNames : config.identities
        let limit = raiseFileLimit()
        let destinationPolicy = self.destinationPolicy
        let localAddresses = LocalAddresses()
        let listen = Endpoint(address: config.listen, port: config.port)
        var forwarding = ConvertForwarder.Configuration(
            listen: listen, handshakeTimeoutNanos: UInt64(config.handshakeTimeout * 1e9),
            maxPending: Int(config.maxPending), maxPendingPerSource: Int(config.maxPendingPerSource),
            identities: identities, addressIsIdentity: config.identities.isEmpty, notBeforeMillis: startedMillis,
            notBeforeMonotonicNanos: startedNanos)
        forwarding.congestionControl = config.congestionControl.kernelName
        forwarding.keepaliveSeconds = config.keepalive
        let forwarder = ConvertForwarder(
            config: forwarding,
            keys: { id in try book.key(for: id) }, logger: logger,
            admission: { request in book.admit(keyID: request.authentication.keyID) }
        ) { destination in
            destinationPolicy.current.refusal(for: destination, localAddresses: localAddresses.current()).map {
                ConvertForwarder.DestinationDenial(rule: $0.ruleName, reason: "\($0)")
            }
        }
        let group = try ReactorGroup(logger: logger)
        do {
            try forwarder.start(group: group)
        } catch {
            stop()
            throw ServiceError("cannot listen on \(listen): \(error)")
        }
        try group.start()
        self.group = group
        self.forwarder = forwarder
        if let tls {
            let controlListen = Endpoint(address: config.listen, port: config.controlPort)
            do {
                controlServer = try ControlServer(
                    listen: controlListen, tls: tls, book: book, sessionLifetime: config.sessionLifetime,
                    limits: .init(
                        maxHandshakes: Int(config.maxControlHandshakes),
                        maxHandshakesPerSource: Int(config.maxControlHandshakesPerSource)),
                    addresses: { [config] in Self.announced(config) }, rules: operatorRules, logger: logger)
            } catch {
                stop()
                throw error
            }
            logger.notice(
                "control channel listening",
                metadata: [
                    "address": "\(controlListen)", "protocol": "MPTCP, TLS 1.3",
                ])
        }
        do {
            try startLocalSocket()
        } catch {
            stop()
            throw ServiceError("cannot open the local socket \(config.statusSocket): \(error)")
        }
        if let control { startMetrics(on: control.reactors[0]) }
        logger.notice(
            "concentrator listening",
            metadata: [
                "address": "\(listen)", "protocol": "MPTCP", "reactors": "\(group.reactors.count)",
                "nofile": "\(limit.new)",
            ])
    }

    /// The local socket of `braid reload`, on a control thread of its own.
    private func startLocalSocket() throws {
        let control = try ReactorGroup(count: 1, logger: logger)
        self.control = control
        statusServer = try LocalQueryServer(reactor: control.reactors[0], path: config.statusSocket) {
            [weak self] question in
            self?.answer(question) ?? ""
        }
        try control.start()
    }

    /// Lets every connection have the kernel's maximum of joined subflows (8). The default, 2,
    /// is one short of a three-uplink CPE, and a subflow whose gateway address vanished can
    /// linger here until its RM_ADDR arrives. The limits before go to the state file first
    /// (unless a killed run recorded them), so a clean stop gives them back even after a crash.
    private func acceptSubflows(state: KernelStateFile) throws {
        let pm = try MPTCPPathManager()
        let old = try pm.limits()
        guard old.subflows < 8 else { return }
        try state.remember(limits: .init(subflows: old.subflows, addAddrAccepted: old.addAddrAccepted))
        try pm.setLimits(subflows: 8, addAddrAccepted: old.addAddrAccepted)
        logger.notice("MPTCP limits set", metadata: ["subflows": "\(old.subflows) -> 8"])
    }

    /// What the control channel announces to gateways: `announce`, else the host's dialable
    /// addresses when listening on all of them (both families with `::`), else the listen
    /// address. Read at each channel's start, so an address added since is announced.
    static func announced(_ config: ConcentratorConfig) -> [IPAddress] {
        if !config.announce.isEmpty { return config.announce }
        let any = config.listen.bytes.allSatisfy { $0 == 0 }
        guard any else { return [config.listen] }
        let own = LocalAddresses.scan().filter { $0.isDialableUnicast && (!config.listen.isIPv4 || $0.isIPv4) }
        // A stable order: IPv4 first, then by bytes.
        return own.sorted { a, b in a.isIPv4 != b.isIPv4 ? a.isIPv4 : a.bytes.lexicographicallyPrecedes(b.bytes) }
    }

    /// Gives back the MPTCP limits and sysctls as they were before the first run; the state
    /// file goes when all went back.
    private func restoreKernelSettings() {
        guard let state else { return }
        var failed: [Error] = []
        if let old = state.record.mptcpLimits {
            do {
                try MPTCPPathManager().setLimits(subflows: old.subflows, addAddrAccepted: old.addAddrAccepted)
            } catch {
                failed.append(error)
            }
        }
        failed = state.restore(alsoFailed: failed)
        for error in failed { logger.warning("cannot give a kernel setting back", metadata: ["error": "\(error)"]) }
        if !failed.isEmpty {
            logger.warning("the state file stays for the next start", metadata: ["state": "\(state.path)"])
        }
        self.state = nil
    }

    /// A change announced by the store: the same effect as a reload that changed subscribers or
    /// classes. The book takes it at once (new sessions and control channels see it); closing the
    /// control channels of subscribers no longer welcome happens on the control thread.
    private func storeChanged(_ directory: SubscriberDirectory) {
        guard let book else { return }
        let gone = book.update(directory)
        logger.notice(
            "subscribers changed in the store",
            metadata: [
                "subscribers": "\(directory.subscribers.count)", "classes": "\(directory.classes.count)",
                "refused_now": "\(gone.sorted().joined(separator: ","))",
            ])
        // A subscriber may have moved to another class: its gateway gets that class's rules.
        controlServer?.pushRules()
        guard !gone.isEmpty else { return }
        if let reactor = control?.reactors.first {
            reactor.execute { [weak self] in self?.controlServer?.revoke(gone) }
        }
    }

    /// Sessions of the data listener: open now and since start.
    func forwarderSessions() -> (active: Int, total: Int) {
        forwarder?.counters.snapshot ?? (0, 0)
    }

    /// Refusals of the data listener since start.
    func forwarderRefusals()
        -> (
            unauthenticated: ConvertForwarder.ReasonCounts, destination: ConvertForwarder.ReasonCounts,
            session: ConvertForwarder.ReasonCounts
        )?
    {
        forwarder?.refusalTotals()
    }

    public func stop() {
        metrics?.stop()
        metrics = nil
        controlServer?.stop()
        controlServer = nil
        control?.stop()
        control = nil
        statusServer?.close()
        statusServer = nil
        group?.stop()
        forwarder?.stop()
        group = nil
        forwarder = nil
        // After the relays: their last bytes are in the last usage period.
        feed?.stop()
        restoreKernelSettings()
        logger.notice("concentrator stopped")
    }
}

/// Startup failures of a role, with the reason an operator needs.
public struct ServiceError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}
