import BraidCore

/// Why a connection on the gateway's transparent listener is addressed to the gateway itself and
/// must not be relayed. TPROXY hands over only LAN connections to other hosts (the interception
/// table returns early for local destinations, and drops whatever reaches the listener's port
/// without its mark), so this is a second line: relaying such a connection would ask the
/// concentrator for the gateway's own address, the concentrator's connection back would arrive at
/// the same listener, and each turn would open one more — thousands a second until both daemons
/// run out of descriptors.
///
/// The listener's port is not a reason on its own: a LAN host may well talk to a remote service on
/// that port, and the input chain already drops every packet to it that TPROXY did not mark
/// (including those for an address added since `localAddresses` was last read).
public enum SelfDestination: Equatable, Sendable, CustomStringConvertible {
    /// The destination is one of this host's addresses.
    case localAddress(IPAddress)

    /// The reason `destination` must not be relayed, or nil. `localAddresses` are the host's own
    /// addresses; an IPv4-mapped IPv6 destination counts as its IPv4 address.
    public static func check(
        _ destination: Endpoint, localAddresses: Set<IPAddress>
    ) -> SelfDestination? {
        let address = IPAddress(mappedIPv6Bytes: destination.address.mappedIPv6Bytes) ?? destination.address
        if localAddresses.contains(address) || localAddresses.contains(destination.address) {
            return .localAddress(address)
        }
        return nil
    }

    public var description: String {
        switch self {
        case .localAddress(let address): return "addressed to the gateway's own address \(address)"
        }
    }
}
