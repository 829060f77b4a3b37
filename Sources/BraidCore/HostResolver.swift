#if canImport(Glibc)
import Glibc
#endif

/// A host name that did not resolve: the name and getaddrinfo's reason.
public struct ResolveError: Error, CustomStringConvertible {
    public var name: String
    public var reason: String

    public var description: String { "\(name) does not resolve: \(reason)" }
}

/// Host names to addresses through the C library's resolver (getaddrinfo: /etc/hosts, then DNS
/// as nsswitch.conf says), so a concentrator can be configured by a name with A and AAAA records.
public enum HostResolver {
    /// Every IPv4 and IPv6 address of `name`, in the resolver's order, without repeats. Blocks
    /// while the resolver asks DNS: callers with a reactor run it on a thread of its own.
    public static func resolve(_ name: String) throws(ResolveError) -> [IPAddress] {
        if let literal = IPAddress(name) { return [literal] }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        // One entry per address rather than one per socket type.
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(name, nil, &hints, &list)
        guard rc == 0 else {
            let reason = rc == EAI_SYSTEM ? String(cString: strerror(errno)) : String(cString: gai_strerror(rc))
            throw ResolveError(name: name, reason: reason)
        }
        defer { freeaddrinfo(list) }
        var out: [IPAddress] = []
        var entry = list
        while let e = entry {
            if let a = address(e.pointee.ai_addr), !out.contains(a) { out.append(a) }
            entry = e.pointee.ai_next
        }
        guard !out.isEmpty else { throw ResolveError(name: name, reason: "no IPv4 or IPv6 address") }
        return out
    }

    private static func address(_ sa: UnsafeMutablePointer<sockaddr>?) -> IPAddress? {
        guard let sa else { return nil }
        switch Int32(sa.pointee.sa_family) {
        case AF_INET:
            return sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                withUnsafeBytes(of: sin.pointee.sin_addr) { IPAddress(bytes: Array($0)) }
            }
        case AF_INET6:
            return sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                withUnsafeBytes(of: sin6.pointee.sin6_addr) { raw -> IPAddress? in
                    let bytes = Array(raw)
                    return IPAddress(mappedIPv6Bytes: bytes) ?? IPAddress(bytes: bytes)
                }
            }
        default:
            return nil
        }
    }
}
