import BraidConfig
import BraidCore
import BraidDataPlane
import BraidWire
import Logging
import NIOCore
import NIOPosix

/// The concentrator role: an MPTCP listener that turns authenticated Convert requests into TCP
/// connections to their destinations and relays them.
public final class ConcentratorService {
    private let config: ConcentratorConfig
    private let group: EventLoopGroup
    private let logger: Logger
    private var listener: Channel?

    public init(config: ConcentratorConfig, group: EventLoopGroup, logger: Logger) {
        self.config = config
        self.group = group
        self.logger = logger
    }

    /// Binds the listener. Throws with a message naming what failed (key file, bind address).
    public func start() throws {
        let key = try PresharedKey.load(path: config.pskFile)
        if let change = try KernelSettings.enableFastOpen(server: true) {
            logger.notice("enabled TCP Fast Open server side", metadata: ["net.ipv4.tcp_fastopen": "\(change.old) -> \(change.new)"])
        }
        let shared = ConcentratorContext(
            authenticator: ConvertAuthenticator(key: key),
            denyList: DenyList(configured: config.denyDestinations),
            handshakeTimeout: .milliseconds(Int64(config.handshakeTimeout * 1000)),
            logger: logger)
        do {
            listener = try MPTCPListener.bind(group: group, address: config.listen, port: config.port) { channel in
                do {
                    try channel.pipeline.syncOperations.addHandler(ConvertServerHandler(shared: shared))
                } catch {
                    channel.close(promise: nil)
                }
            }.wait()
        } catch {
            throw ServiceError("cannot listen on \(Endpoint(address: config.listen, port: config.port)): \(error)")
        }
        logger.notice(
            "concentrator listening",
            metadata: ["address": "\(Endpoint(address: config.listen, port: config.port))", "protocol": "MPTCP"])
    }

    public func stop() {
        try? listener?.close().wait()
        listener = nil
        logger.notice("concentrator stopped")
    }
}

/// Startup failures of a role, with the reason an operator needs.
public struct ServiceError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}
