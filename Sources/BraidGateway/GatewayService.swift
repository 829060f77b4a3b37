import BraidConfig
import BraidCore
import BraidDataPlane
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
    private var uplinks: UplinkManager?
    var supervisor: UplinkSupervisor?
    private var statusServer: LocalQueryServer?
    var interception: Interception?

    public init(config: GatewayConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    /// Installs kernel state and starts listening. On failure, whatever was installed is removed.
    public func start() throws {
        let key = try PresharedKey.load(path: config.pskFile)
        let authenticator = ConvertAuthenticator(key: key)
        let server = Endpoint(address: config.server, port: config.port)
        if config.fastOpen, let change = try KernelSettings.enableFastOpen(server: false) {
            logger.notice("enabled TCP Fast Open client side", metadata: ["net.ipv4.tcp_fastopen": "\(change.old) -> \(change.new)"])
        }
        let limit = raiseFileLimit()
        do {
            // First, while descriptor numbers are low (see Interception).
            let table = try Interception(
                .init(lanDevices: config.lanDevices, listenerPort: config.tproxyPort, fwmark: config.fwmark))
            let manager = try UplinkManager(config: config, logger: logger)
            uplinks = manager
            try manager.installBase()
            let control = try ReactorGroup(count: 1, logger: logger)
            self.control = control
            let supervisor = try UplinkSupervisor(
                config: config, manager: manager, reactor: control.reactors[0], logger: logger)
            self.supervisor = supervisor
            // The first pass runs here, before the threads start, so the uplinks are in place
            // before the first LAN connection is accepted.
            try supervisor.start()

            let data = try ReactorGroup(logger: logger)
            self.data = data
            let source = supervisor.preferredSource
            let forwarder = TransparentForwarder(
                config: .init(server: server, listenerPort: config.tproxyPort, fastOpen: config.fastOpen),
                logger: logger, selectSource: { source.get() }
            ) { destination in
                try ConvertClientHandshake.request(
                    to: destination, authenticator: authenticator, nowMillis: wallClockMillis(),
                    nonce: SecureRandom.bytes(ConvertAuthentication.nonceSize))
            }
            self.forwarder = forwarder
            try forwarder.start(group: data)
            let counters = forwarder.counters
            statusServer = try LocalQueryServer(reactor: control.reactors[0], path: config.statusSocket) {
                [weak self, weak supervisor] question in
                if question == "reload" { return self?.reloadNow().text ?? "" }
                return supervisor?.status(sessions: counters) ?? "{}"
            }
            try control.start()
            try data.start()
            try table.install()
            interception = table
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

    /// Removes the nftables table, listeners, routes and rules, and gives MPTCP back its previous path manager.
    public func stop() {
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
        uplinks?.remove()
        uplinks = nil
        logger.notice("gateway stopped; kernel state removed")
    }
}
