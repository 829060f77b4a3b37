import BraidCore

/// Why a connection on the gateway's transparent listener is addressed to the gateway itself and
/// must not be relayed. TPROXY hands over only LAN connections to other hosts (the interception
/// table returns early for local destinations, and drops whatever reaches the listener's port
/// without its mark), so this is a second line: relaying such a connection would ask the
/// concentrator for the gateway's own address, the concentrator's connection back would arrive at
/// the same listener, and each turn would open one more — thousands a second until both daemons
/// run out of descriptors.
public enum SelfDestination: Equatable, Sendable, CustomStringConvertible {
    /// The destination is the listener's own port: only a connection addressed to the listener
    /// itself has it (TPROXY keeps the original destination port, which is the listener's only by
    /// chance, and then on another host).
    case listenerPort(UInt16)
    /// The destination is one of this host's addresses.
    case localAddress(IPAddress)

    /// The reason `destination` must not be relayed, or nil. `localAddresses` are the host's own
    /// addresses; an IPv4-mapped IPv6 destination counts as its IPv4 address.
    public static func check(
        _ destination: Endpoint, listenerPort: UInt16, localAddresses: Set<IPAddress>
    ) -> SelfDestination? {
        let address = IPAddress(mappedIPv6Bytes: destination.address.mappedIPv6Bytes) ?? destination.address
        if localAddresses.contains(address) || localAddresses.contains(destination.address) {
            return .localAddress(address)
        }
        if destination.port == listenerPort { return .listenerPort(listenerPort) }
        return nil
    }

    public var description: String {
        switch self {
        case .listenerPort(let port): return "addressed to the transparent listener's port \(port)"
        case .localAddress(let address): return "addressed to the gateway's own address \(address)"
        }
    }
}
