import BraidCore
import CNetlink

#if canImport(Glibc)
import Glibc
#endif

/// The kernel's table of TCP sockets through sock_diag (NETLINK_SOCK_DIAG, the interface `ss`
/// uses): the established ones only, filtered by state in the kernel.
///
/// Why not /proc/net/tcp: it lists every socket, TIME_WAIT included, as text. A gateway opening
/// thousands of short connections a second holds a hundred thousand and more in TIME_WAIT, and
/// reading and splitting that text once a second cost the control thread more than everything
/// else it did for those connections. Here the kernel skips every socket in another state, and
/// what comes back is binary.
public final class TCPSocketTable {
    private let socket: NetlinkSocket

    /// A TCP connection's two ends; IPv4-mapped IPv6 addresses are named as IPv4.
    public struct Connection: Hashable, Sendable {
        public var local: Endpoint
        public var remote: Endpoint
    }

    public init() throws {
        socket = try NetlinkSocket(bus: NETLINK_SOCK_DIAG)
    }

    /// Calls `each` with every established TCP socket of this network namespace (MPTCP subflows
    /// are ordinary TCP sockets here), IPv4 and IPv6. A callback rather than a collection: the
    /// caller keeps what it needs in its own type, and a gateway with tens of thousands of
    /// subflows builds one set a pass, not two.
    public func forEachEstablished(_ each: (Connection) -> Void) throws {
        for family in [AF_INET, AF_INET6] {
            let m = NetlinkSocket.Message(type: UInt16(SOCK_DIAG_BY_FAMILY), flags: 0, size: 256)
            let req = m.putExtraHeader(inet_diag_req_v2.self)
            req.pointee.sdiag_family = UInt8(family)
            req.pointee.sdiag_protocol = UInt8(IPPROTO_TCP)
            req.pointee.idiag_states = 1 << 1  // TCP_ESTABLISHED
            try socket.dump(m, operation: "dump established TCP sockets (\(family == AF_INET ? "IPv4" : "IPv6"))") { h in
                guard h.pointee.nlmsg_type == UInt16(SOCK_DIAG_BY_FAMILY) else { return }
                let msg = mnl_nlmsg_get_payload(h).assumingMemoryBound(to: inet_diag_msg.self).pointee
                if let c = Self.connection(msg) { each(c) }
            }
        }
    }

    /// The two ends of a socket as sock_diag reports them: ports and addresses in network order.
    static func connection(_ msg: inet_diag_msg) -> Connection? {
        let id = msg.id
        let ipv4 = Int32(msg.idiag_family) == AF_INET
        func address(_ words: (UInt32, UInt32, UInt32, UInt32)) -> IPAddress? {
            var w = words
            let bytes = withUnsafeBytes(of: &w) { Array($0.prefix(ipv4 ? 4 : 16)) }
            guard let a = IPAddress(bytes: bytes) else { return nil }
            if case .v6(let b) = a, let mapped = IPAddress(mappedIPv6Bytes: b) { return mapped }
            return a
        }
        guard let local = address(id.idiag_src), let remote = address(id.idiag_dst) else { return nil }
        return Connection(
            local: Endpoint(address: local, port: UInt16(bigEndian: id.idiag_sport)),
            remote: Endpoint(address: remote, port: UInt16(bigEndian: id.idiag_dport)))
    }
}
