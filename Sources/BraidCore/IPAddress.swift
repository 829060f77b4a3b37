#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address as raw network-order bytes. Value type shared by the codecs, the
/// configuration and the kernel mechanism so none of them depends on a socket library.
public enum IPAddress: Hashable, Sendable, CustomStringConvertible {
    case v4(UInt32)  // host order, for easy prefix arithmetic
    case v6([UInt8])  // 16 bytes

    /// Parses dotted-quad IPv4 or RFC 4291 text IPv6 (a zone suffix is not accepted).
    public init?(_ text: String) {
        var a4 = in_addr()
        if inet_pton(AF_INET, text, &a4) == 1 {
            self = .v4(UInt32(bigEndian: a4.s_addr))
            return
        }
        var a6 = in6_addr()
        if inet_pton(AF_INET6, text, &a6) == 1 {
            self = .v6(withUnsafeBytes(of: &a6) { Array($0) })
            return
        }
        return nil
    }

    /// Builds an address from 4 or 16 network-order bytes.
    public init?(bytes: [UInt8]) {
        switch bytes.count {
        case 4:
            self = .v4(bytes.reduce(0) { ($0 << 8) | UInt32($1) })
        case 16:
            self = .v6(bytes)
        default:
            return nil
        }
    }

    public var bytes: [UInt8] {
        switch self {
        case .v4(let v):
            return [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)]
        case .v6(let b):
            return b
        }
    }

    public var isIPv4: Bool {
        if case .v4 = self { return true }
        return false
    }

    /// RFC 8803 §5.2.2 carries every address as 16 bytes, IPv4 as IPv4-mapped (::ffff:a.b.c.d).
    public var mappedIPv6Bytes: [UInt8] {
        switch self {
        case .v4:
            return [UInt8](repeating: 0, count: 10) + [0xff, 0xff] + bytes
        case .v6(let b):
            return b
        }
    }

    /// The inverse of `mappedIPv6Bytes`: an IPv4-mapped address becomes `.v4`.
    public init?(mappedIPv6Bytes b: [UInt8]) {
        guard b.count == 16 else { return nil }
        if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xff && b[11] == 0xff {
            self.init(bytes: Array(b[12..<16]))
        } else {
            self = .v6(b)
        }
    }

    public var description: String {
        switch self {
        case .v4(var v):
            v = v.bigEndian
            var a = in_addr(s_addr: v)
            var buf = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
            inet_ntop(AF_INET, &a, &buf, socklen_t(buf.count))
            return String(cString: buf)
        case .v6(let b):
            var a = in6_addr()
            withUnsafeMutableBytes(of: &a) { $0.copyBytes(from: b) }
            var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            inet_ntop(AF_INET6, &a, &buf, socklen_t(buf.count))
            return String(cString: buf)
        }
    }
}

/// An address prefix (CIDR), used for deny lists and bypass rules.
public struct IPPrefix: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    public let length: Int

    public init?(address: IPAddress, length: Int) {
        let max = address.isIPv4 ? 32 : 128
        guard (0...max).contains(length) else { return nil }
        self.address = address
        self.length = length
    }

    /// Parses `a.b.c.d/n`, `x::y/n`, or a bare address (a host prefix).
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let addr = IPAddress(String(parts[0])) else { return nil }
        let max = addr.isIPv4 ? 32 : 128
        var len = max
        if parts.count == 2 {
            guard let l = Int(parts[1]), (0...max).contains(l), !parts[1].hasPrefix("+") else { return nil }
            len = l
        }
        self.init(address: addr, length: len)
    }

    /// True when `other` lies inside this prefix. An IPv4 address never matches an IPv6 prefix,
    /// except that IPv4-mapped IPv6 addresses are compared as IPv4 by callers (see `IPAddress.init(mappedIPv6Bytes:)`).
    public func contains(_ other: IPAddress) -> Bool {
        let a = address.bytes
        let b = other.bytes
        guard a.count == b.count else { return false }
        var remaining = length
        for i in 0..<a.count {
            if remaining <= 0 { return true }
            let bits = min(8, remaining)
            let mask: UInt8 = bits == 8 ? 0xff : ~(0xff >> UInt8(bits))
            if (a[i] & mask) != (b[i] & mask) { return false }
            remaining -= bits
        }
        return true
    }

    /// The IPv4 prefix an IPv4-mapped prefix (`::ffff:a.b.c.d/n`, n >= 96) stands for, else self.
    /// Destinations arrive as IPv4 (RFC 8803 carries IPv4 mapped, and it is unmapped on reading),
    /// so a mapped prefix left as IPv6 would never match anything.
    public var unmappingIPv4: IPPrefix {
        guard case .v6(let b) = address, length >= 96, let v4 = IPAddress(mappedIPv6Bytes: b), v4.isIPv4,
            let p = IPPrefix(address: v4, length: length - 96)
        else { return self }
        return p
    }

    public var description: String { "\(address)/\(length)" }
}

/// A transport endpoint: where a LAN connection was going, or where a daemon listens.
public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(address: IPAddress, port: UInt16) {
        self.address = address
        self.port = port
    }

    public var description: String {
        address.isIPv4 ? "\(address):\(port)" : "[\(address)]:\(port)"
    }
}
