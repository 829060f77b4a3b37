import BraidConfig
import BraidCore
import BraidDataPlane
import BraidWire
import Logging
import NIOCore
import NIOPosix

/// The gateway role: intercepts LAN TCP, carries each connection over MPTCP to the
/// concentrator behind an authenticated Convert message, and relays.
public final class GatewayService {
    private let config: GatewayConfig
    private let group: EventLoopGroup
    private let logger: Logger
    private var listeners: [Channel] = []
    private var uplinks: UplinkManager?
    private var interception: Interception?

    public init(config: GatewayConfig, group: EventLoopGroup, logger: Logger) {
        self.config = config
        self.group = group
        self.logger = logger
    }

    /// Installs kernel state and starts listening. On failure, whatever was installed is removed.
    public func start() throws {
        let key = try PresharedKey.load(path: config.pskFile)
        let authenticator = ConvertAuthenticator(key: key)
        let server = try SocketAddress(Endpoint(address: config.server, port: config.port))
        if config.fastOpen, let change = try KernelSettings.enableFastOpen(server: false) {
            logger.notice("enabled TCP Fast Open client side", metadata: ["net.ipv4.tcp_fastopen": "\(change.old) -> \(change.new)"])
        }
        do {
            let manager = try UplinkManager(config: config, logger: logger)
            uplinks = manager
            try manager.install()
            let logger = self.logger
            listeners = try TransparentListener.bind(group: group, port: config.tproxyPort) { lan in
                GatewayService.handle(
                    lan: lan, server: server, authenticator: authenticator, fastOpen: self.config.fastOpen, logger: logger)
            }.wait()
            let table = Interception(
                .init(lanDevices: config.lanDevices, listenerPort: config.tproxyPort, fwmark: config.fwmark))
            try table.install()
            interception = table
        } catch {
            stop()
            throw error
        }
        logger.notice(
            "gateway running",
            metadata: [
                "concentrator": "\(Endpoint(address: config.server, port: config.port))",
                "lan": "\(config.lanDevices.joined(separator: ","))", "tproxy_port": "\(config.tproxyPort)",
            ])
    }

    /// Removes the nftables table, listeners, routes, rules and endpoints.
    public func stop() {
        do { try interception?.remove() } catch { logger.warning("\(error)") }
        interception = nil
        for l in listeners { try? l.close().wait() }
        listeners = []
        uplinks?.remove()
        uplinks = nil
        logger.notice("gateway stopped; kernel state removed")
    }

    /// One intercepted LAN connection. Runs on the LAN channel's event loop.
    static func handle(
        lan: Channel, server: SocketAddress, authenticator: ConvertAuthenticator, fastOpen: Bool, logger: Logger
    ) {
        guard let destination = lan.localAddress?.braidEndpoint else {
            lan.close(promise: nil)
            return
        }
        let preamble: [UInt8]
        do {
            preamble = try ConvertClientHandshake.request(
                to: destination, authenticator: authenticator, nowMillis: wallClockMillis(),
                nonce: SecureRandom.bytes(ConvertAuthentication.nonceSize))
        } catch {
            RelayHandler.reset(lan)
            return
        }
        let client = lan.remoteAddress?.description ?? "?"
        let upstream = Dialer.mptcp(on: lan.eventLoop, to: server, preamble: preamble, fastOpen: fastOpen) { channel in
            let reply = ConvertReplyHandler { error in
                logger.info(
                    "connection refused upstream",
                    metadata: ["client": "\(client)", "destination": "\(destination)", "reason": "\(error)"])
                RelayHandler.reset(lan)
            }
            return channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(reply) }
        }
        upstream.whenComplete { result in
            switch result {
            case .failure(let error):
                logger.warning(
                    "cannot reach the concentrator",
                    metadata: ["client": "\(client)", "destination": "\(destination)", "error": "\(error)"])
                RelayHandler.reset(lan)
            case .success(let mptcp):
                let (fromLAN, fromServer) = RelayHandler.matchedPair()
                do {
                    try lan.pipeline.syncOperations.addHandler(fromLAN)
                    try mptcp.pipeline.syncOperations.addHandler(fromServer)
                } catch {
                    RelayHandler.reset(lan)
                    RelayHandler.reset(mptcp)
                    return
                }
                lan.setOption(.autoRead, value: true).whenFailure { _ in }
            }
        }
    }
}
