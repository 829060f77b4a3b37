import BraidConfig
import BraidCore
import BraidDataPlane
import BraidNetlink
import BraidTLS
import BraidWire
import Logging

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
    private var previousLimits: (subflows: UInt32, addAddrAccepted: UInt32)?
    /// One thread for the local socket and reloads, off the data reactors.
    var control: ReactorGroup?
    private var statusServer: LocalQueryServer?
    /// Read by every data reactor at each connection; swapped whole by a reload.
    let denyList: CurrentDenyList
    /// Subscribers, their session keys, open sessions and rate buckets.
    private(set) var book: SubscriberBook?
    var controlServer: ControlServer?

    public init(config: ConcentratorConfig, logger: Logger) {
        self.config = config
        self.logger = logger
        denyList = CurrentDenyList(DenyList(configured: config.denyDestinations))
    }

    /// Binds the listener and starts the reactors. Throws with a message naming what failed
    /// (key file, bind address).
    public func start() throws {
        let key = config.pskFile.isEmpty ? nil : try PresharedKey.load(path: config.pskFile)
        let book = SubscriberBook(config: config, presharedKey: key)
        self.book = book
        // The TLS context first: a missing or unreadable certificate stops the start here.
        let tls = try config.tls.map {
            try TLSContext(role: .server, ca: $0.ca, certificate: $0.cert, key: $0.key, crl: $0.crl)
        }
        if let change = try KernelSettings.enableFastOpen(server: true) {
            logger.notice("enabled TCP Fast Open server side", metadata: ["net.ipv4.tcp_fastopen": "\(change.old) -> \(change.new)"])
        }
        let limit = raiseFileLimit()
        try acceptSubflows()
        let denyList = self.denyList
        let localAddresses = LocalAddresses()
        let listen = Endpoint(address: config.listen, port: config.port)
        let forwarder = ConvertForwarder(
            config: .init(
                listen: listen, handshakeTimeoutNanos: UInt64(config.handshakeTimeout * 1e9),
                maxPending: Int(config.maxPending), maxPendingPerSource: Int(config.maxPendingPerSource)),
            keys: { id in try book.key(for: id) }, logger: logger,
            admission: { request in book.admit(keyID: request.authentication.keyID) }
        ) { destination in
            denyList.current.refusal(for: destination.address, localAddresses: localAddresses.current())
        }
        let group = try ReactorGroup(logger: logger)
        do {
            try forwarder.start(group: group)
        } catch {
            throw ServiceError("cannot listen on \(listen): \(error)")
        }
        try group.start()
        self.group = group
        self.forwarder = forwarder
        if let tls {
            let controlListen = Endpoint(address: config.listen, port: config.controlPort)
            do {
                controlServer = try ControlServer(
                    listen: controlListen, tls: tls, book: book, sessionLifetime: config.sessionLifetime, logger: logger)
            } catch {
                stop()
                throw error
            }
            logger.notice(
                "control channel listening",
                metadata: [
                    "address": "\(controlListen)", "protocol": "MPTCP, TLS 1.3", "subscribers": "\(config.subscribers.count)",
                ])
        }
        do {
            try startLocalSocket()
        } catch {
            stop()
            throw ServiceError("cannot open the local socket \(config.statusSocket): \(error)")
        }
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
    /// linger here until its RM_ADDR arrives.
    private func acceptSubflows() throws {
        let pm = try MPTCPPathManager()
        let old = try pm.limits()
        guard old.subflows < 8 else { return }
        try pm.setLimits(subflows: 8, addAddrAccepted: old.addAddrAccepted)
        previousLimits = old
        logger.notice("MPTCP limits set", metadata: ["subflows": "\(old.subflows) -> 8"])
    }

    public func stop() {
        if let old = previousLimits, let pm = try? MPTCPPathManager() {
            try? pm.setLimits(subflows: old.subflows, addAddrAccepted: old.addAddrAccepted)
            previousLimits = nil
        }
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
        logger.notice("concentrator stopped")
    }
}

/// Startup failures of a role, with the reason an operator needs.
public struct ServiceError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}
