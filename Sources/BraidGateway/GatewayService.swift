import BraidConfig
import BraidCore
import BraidDataPlane
import BraidWire
import Logging

/// The gateway role: intercepts LAN TCP, carries each connection over MPTCP to the
/// concentrator behind an authenticated Convert message, and relays.
public final class GatewayService {
    private let config: GatewayConfig
    private let logger: Logger
    private var group: ReactorGroup?
    private var forwarder: TransparentForwarder?
    private var uplinks: UplinkManager?
    private var interception: Interception?

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
            let manager = try UplinkManager(config: config, logger: logger)
            uplinks = manager
            try manager.install()
            let group = try ReactorGroup(logger: logger)
            self.group = group
            let forwarder = TransparentForwarder(
                config: .init(server: server, listenerPort: config.tproxyPort, fastOpen: config.fastOpen),
                logger: logger
            ) { destination in
                try ConvertClientHandshake.request(
                    to: destination, authenticator: authenticator, nowMillis: wallClockMillis(),
                    nonce: SecureRandom.bytes(ConvertAuthentication.nonceSize))
            }
            self.forwarder = forwarder
            try forwarder.start(group: group)
            try group.start()
            let table = Interception(
                .init(lanDevices: config.lanDevices, listenerPort: config.tproxyPort, fwmark: config.fwmark))
            try table.install()
            interception = table
            logger.notice(
                "gateway running",
                metadata: [
                    "concentrator": "\(server)", "lan": "\(config.lanDevices.joined(separator: ","))",
                    "tproxy_port": "\(config.tproxyPort)", "reactors": "\(group.reactors.count)", "nofile": "\(limit.new)",
                ])
        } catch {
            stop()
            throw error
        }
    }

    /// Removes the nftables table, listeners, routes, rules and endpoints.
    public func stop() {
        do { try interception?.remove() } catch { logger.warning("\(error)") }
        interception = nil
        group?.stop()
        group = nil
        forwarder?.stop()
        forwarder = nil
        uplinks?.remove()
        uplinks = nil
        logger.notice("gateway stopped; kernel state removed")
    }
}
