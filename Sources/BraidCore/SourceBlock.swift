#if canImport(Glibc)
import Glibc
#endif

/// Where a connection comes from, as per-source limits and the refusal summary count it: an IPv4
/// address, or the /64 an IPv6 address lies in. A subscriber line is given a /64 at least, so
/// whoever holds one must not pass for 2^64 sources. IPv4-mapped IPv6 addresses (a dual-stack
/// listener's IPv4 clients) count as the IPv4 address. A plain value: hashing it allocates nothing.
public struct SourceBlock: Hashable, Sendable, CustomStringConvertible {
    /// The IPv4 address in the low 32 bits, or the first 64 bits of the IPv6 address.
    public let bits: UInt64
    public let isIPv6: Bool

    public init(_ address: IPAddress) {
        switch address {
        case .v4(let v):
            self.init(ipv4: v)
        case .v6(let b):
            self.init(ipv6Prefix: b.prefix(8).reduce(0) { $0 << 8 | UInt64($1) })
        }
    }

    public init(ipv4 address: UInt32) {
        bits = UInt64(address)
        isIPv6 = false
    }

    public init(ipv6Prefix: UInt64) {
        bits = ipv6Prefix
        isIPv6 = true
    }

    /// The address in a socket address (IPv4, IPv6 or IPv4-mapped IPv6), read straight from its
    /// bytes (no address object is built); nil for another family.
    public init?(_ ss: sockaddr_storage) {
        var ss = ss
        let block = withUnsafeBytes(of: &ss) { raw -> SourceBlock? in
            switch Int32(raw.load(as: sockaddr.self).sa_family) {
            case AF_INET:
                return SourceBlock(ipv4: UInt32(bigEndian: raw.load(as: sockaddr_in.self).sin_addr.s_addr))
            case AF_INET6:
                let sin6 = raw.load(as: sockaddr_in6.self)
                return withUnsafeBytes(of: sin6.sin6_addr) { a in
                    let high = a.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                    // ::ffff:a.b.c.d: the first 80 bits zero, then 0xffff.
                    if high == 0 && a[8] == 0 && a[9] == 0 && a[10] == 0xff && a[11] == 0xff {
                        return SourceBlock(ipv4: a[12...].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
                    }
                    return SourceBlock(ipv6Prefix: high)
                }
            default:
                return nil
            }
        }
        guard let block else { return nil }
        self = block
    }

    public var description: String {
        guard isIPv6 else { return "\(IPAddress.v4(UInt32(truncatingIfNeeded: bits)))" }
        let bytes = (0..<8).map { UInt8(truncatingIfNeeded: bits >> (56 - 8 * UInt64($0))) }
        return "\(IPAddress.v6(bytes + [UInt8](repeating: 0, count: 8)))/64"
    }
}
