import BraidCore
import NIOCore

extension SourceBlock {
    /// The block of a NIO peer address; an IPv4 client of a dual-stack listener (::ffff:a.b.c.d)
    /// counts as its IPv4 address. Nil for an address that is not IP (a Unix socket).
    public init?(_ address: SocketAddress?) {
        switch address {
        case .v4(let a)?:
            self.init(ipv4: UInt32(bigEndian: a.address.sin_addr.s_addr))
        case .v6(let a)?:
            let bytes = withUnsafeBytes(of: a.address.sin6_addr) { [UInt8]($0) }
            self.init(IPAddress(mappedIPv6Bytes: bytes) ?? .v6(bytes))
        default:
            return nil
        }
    }
}
