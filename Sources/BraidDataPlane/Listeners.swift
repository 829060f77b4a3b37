import BraidCore
import CBraidLinux
import Logging
import NIOCore
import NIOPosix

/// Accepted connections are handed over without reading: the caller attaches its handlers and
/// then turns on reading, so no byte can arrive at a pipeline that does not expect it.
public typealias ConnectionHandoff = @Sendable (Channel) -> Void

/// The gateway's transparent listener: one IPv4 and one IPv6 socket with IP_TRANSPARENT on the
/// TPROXY port. An accepted channel's local address is the LAN client's original destination.
public enum TransparentListener {
    public static func bind(
        group: EventLoopGroup, port: UInt16, handoff: @escaping ConnectionHandoff
    ) -> EventLoopFuture<[Channel]> {
        func bootstrap(v6: Bool) -> ServerBootstrap {
            var b = ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelOption(.backlog, value: 1024)
                .childChannelOption(.autoRead, value: false)
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    handoff(channel)
                    return channel.eventLoop.makeSucceededVoidFuture()
                }
            if v6 {
                b = b.serverChannelOption(BraidSocketOption.ipv6Transparent, value: 1)
                    .serverChannelOption(BraidSocketOption.ipv6Only, value: 1)
            } else {
                b = b.serverChannelOption(BraidSocketOption.ipTransparent, value: 1)
            }
            return b
        }
        let v4 = bootstrap(v6: false).bind(host: "0.0.0.0", port: Int(port))
        let v6 = bootstrap(v6: true).bind(host: "::", port: Int(port))
        return v4.and(v6).map { [$0.0, $0.1] }
    }
}

/// The concentrator's data listener: MPTCP, accepting Fast Open data in the SYN.
public enum MPTCPListener {
    public static func bind(
        group: EventLoopGroup, address: IPAddress, port: UInt16, handoff: @escaping ConnectionHandoff
    ) -> EventLoopFuture<Channel> {
        var b = ServerBootstrap(group: group)
            .enableMPTCP(true)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(BraidSocketOption.tcpFastOpen, value: 4096)
            .serverChannelOption(BraidSocketOption.tcpFastOpenNoCookie, value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                handoff(channel)
                return channel.eventLoop.makeSucceededVoidFuture()
            }
        if !address.isIPv4 {
            // `::` serves IPv4 too (dual stack) unless the operator names a specific address.
            b = b.serverChannelOption(BraidSocketOption.ipv6Only, value: 0)
        }
        return b.bind(host: address.description, port: Int(port))
    }
}

/// Opens data connections: MPTCP towards the concentrator with the Convert message in the SYN,
/// plain TCP towards origins.
public enum Dialer {
    /// An MPTCP connection to `server` whose first bytes are `preamble`, sent with TCP Fast Open
    /// (TCP_FASTOPEN_CONNECT: connect() returns at once and the first write rides in the SYN).
    /// `initializer` adds the handlers that read the reply.
    public static func mptcp(
        on eventLoop: EventLoop, to server: SocketAddress, preamble: [UInt8], fastOpen: Bool,
        initializer: @escaping @Sendable (Channel) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<Channel> {
        var bootstrap = ClientBootstrap(group: eventLoop)
            .enableMPTCP(true)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
        if fastOpen {
            bootstrap = bootstrap.channelOption(BraidSocketOption.tcpFastOpenConnect, value: 1)
                .channelOption(BraidSocketOption.tcpFastOpenNoCookie, value: 1)
        }
        return bootstrap
            .connectTimeout(.seconds(10))
            .channelInitializer(initializer)
            .connect(to: server)
            .flatMap { channel in
                var buffer = channel.allocator.buffer(capacity: preamble.count)
                buffer.writeBytes(preamble)
                return channel.writeAndFlush(buffer).map { channel }
            }
    }

    /// A plain TCP connection to an origin server. Reading stays off until the caller has
    /// attached the relay.
    public static func tcp(on eventLoop: EventLoop, to destination: SocketAddress, timeout: TimeAmount)
        -> EventLoopFuture<Channel>
    {
        ClientBootstrap(group: eventLoop)
            .channelOption(.autoRead, value: false)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(timeout)
            .connect(to: destination)
    }
}
