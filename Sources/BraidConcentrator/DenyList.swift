import BraidCore

#if canImport(Glibc)
import Glibc
#endif

/// Destinations the concentrator never connects to, so it can never be used to reach its own
/// host, its management plane or a link-local metadata service. Built-in entries come first;
/// the operator's `list deny_dest` adds more.
public struct DenyList: Sendable {
    public static let builtIn: [IPPrefix] = [
        "0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
        "::/128", "::1/128", "fe80::/10", "ff00::/8", "::ffff:0:0/96",
    ].map { IPPrefix($0)! }

    public let configured: [IPPrefix]

    public init(configured: [IPPrefix]) {
        self.configured = configured
    }

    /// The reason `destination` is refused, or nil when it may be reached.
    /// `localAddresses` are the concentrator's own addresses at the time of the check.
    public func refusal(for destination: IPAddress, localAddresses: Set<IPAddress>) -> String? {
        if let p = Self.builtIn.first(where: { $0.contains(destination) }) { return "built-in deny \(p)" }
        if localAddresses.contains(destination) { return "the concentrator's own address" }
        if let p = configured.first(where: { $0.contains(destination) }) { return "deny_dest \(p)" }
        return nil
    }

    /// Addresses configured on this host's interfaces (getifaddrs).
    public static func localAddresses() -> Set<IPAddress> {
        var out: Set<IPAddress> = []
        var list: UnsafeMutablePointer<ifaddrs>? = nil
        guard getifaddrs(&list) == 0 else { return out }
        defer { freeifaddrs(list) }
        var p = list
        while let entry = p {
            if let sa = entry.pointee.ifa_addr {
                switch Int32(sa.pointee.sa_family) {
                case AF_INET:
                    let a = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr }
                    out.insert(.v4(UInt32(bigEndian: a)))
                case AF_INET6:
                    var a = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                    out.insert(.v6(withUnsafeBytes(of: &a) { Array($0) }))
                default:
                    break
                }
            }
            p = entry.pointee.ifa_next
        }
        return out
    }
}
