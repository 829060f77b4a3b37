import BraidCore
import CBraidLinux
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Socket options braid sets through NIO, named for what they do.
public enum BraidSocketOption {
    /// IP_TRANSPARENT: lets a listener accept connections TPROXY hands it for foreign addresses.
    public static let ipTransparent = ChannelOptions.Types.SocketOption(
        level: SocketOptionLevel(braid_SOL_IP), name: SocketOptionName(braid_IP_TRANSPARENT))
    public static let ipv6Transparent = ChannelOptions.Types.SocketOption(
        level: SocketOptionLevel(braid_SOL_IPV6), name: SocketOptionName(braid_IPV6_TRANSPARENT))
    public static let ipv6Only = ChannelOptions.Types.SocketOption(
        level: SocketOptionLevel(braid_SOL_IPV6), name: SocketOptionName(26))  // IPV6_V6ONLY
    /// TCP_FASTOPEN on a listener: queue length of pending Fast Open requests.
    public static let tcpFastOpen = ChannelOptions.Types.SocketOption(
        level: SocketOptionLevel(braid_SOL_TCP), name: SocketOptionName(braid_TCP_FASTOPEN))
    /// TCP_FASTOPEN_CONNECT: connect() returns at once and the first write goes in the SYN.
    public static let tcpFastOpenConnect = ChannelOptions.Types.SocketOption(
        level: SocketOptionLevel(braid_SOL_TCP), name: SocketOptionName(braid_TCP_FASTOPEN_CONNECT))
    /// TCP_FASTOPEN_NO_COOKIE: data in the SYN without a cookie round trip first. Safe here
    /// because both ends are braid and the data (the Convert message) is authenticated.
    public static let tcpFastOpenNoCookie = ChannelOptions.Types.SocketOption(
        level: SocketOptionLevel(braid_SOL_TCP), name: SocketOptionName(braid_TCP_FASTOPEN_NO_COOKIE))
}

/// Converts between braid's address type and NIO's.
extension SocketAddress {
    public init(_ endpoint: BraidCore.Endpoint) throws {
        self = try SocketAddress(ipAddress: endpoint.address.description, port: Int(endpoint.port))
    }

    public var braidEndpoint: BraidCore.Endpoint? {
        guard let ip = self.ipAddress, let port = self.port, let addr = IPAddress(ip) else { return nil }
        // An IPv4 peer of a dual-stack socket shows as ::ffff:a.b.c.d.
        if case .v6(let b) = addr, let mapped = IPAddress(mappedIPv6Bytes: b) {
            return BraidCore.Endpoint(address: mapped, port: UInt16(port))
        }
        return BraidCore.Endpoint(address: addr, port: UInt16(port))
    }
}

/// Wall-clock milliseconds: the authentication timestamp is compared across hosts.
public func wallClockMillis() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
}
