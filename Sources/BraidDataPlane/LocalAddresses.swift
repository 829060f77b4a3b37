import BraidCore

#if canImport(Glibc)
import Glibc
#endif

/// The host's own addresses, refreshed at most once a second: addresses change rarely, and a
/// getifaddrs per connection would cost more than the rest of its setup. The concentrator refuses
/// them as destinations; the gateway refuses to relay a connection addressed to them.
public final class LocalAddresses {
    private let lock = Mutex()
    private var at: UInt64 = 0
    private var set: Set<IPAddress> = []

    public init() {}

    /// The addresses as of at most a second ago.
    public func current() -> Set<IPAddress> {
        let now = monotonicNanos()
        let (cached, stale) = lock.withLock { (set, at == 0 || now &- at > 1_000_000_000) }
        guard stale else { return cached }
        // getifaddrs outside the lock: every reactor reads the set, none should wait on a netlink
        // dump. Two threads may scan at once; either result is current.
        let fresh = Self.scan()
        lock.withLock {
            set = fresh
            at = now
        }
        return fresh
    }

    /// Addresses configured on this host's interfaces now (getifaddrs); empty if it fails.
    public static func scan() -> Set<IPAddress> {
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
