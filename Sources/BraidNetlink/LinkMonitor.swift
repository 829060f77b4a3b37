import BraidCore
import CNetlink

#if canImport(Glibc)
import Glibc
#endif

/// Watches rtnetlink for link, address and route changes. The owner dumps the state it needs
/// (RouteTables) and then reacts to these events by dumping again for the interfaces they name;
/// an overrun of the socket buffer (ENOBUFS: events were lost) is reported as `.overrun`, and the
/// owner must then re-dump everything. That is the whole contract: events are triggers, the dump
/// is the truth, so a lost or reordered event can never leave stale state behind.
public final class LinkMonitor {
    public enum Event: Equatable, CustomStringConvertible {
        /// A link changed: administrative state, carrier, or it appeared or went away.
        case link(ifindex: UInt32, up: Bool, carrier: Bool, removed: Bool)
        /// An address was added to or removed from an interface.
        case address(ifindex: UInt32, removed: Bool)
        /// A route changed; `ifindex` is its output interface when it has one.
        case route(ifindex: UInt32?, table: UInt32, removed: Bool)
        /// Events were lost: re-read everything.
        case overrun

        public var description: String {
            switch self {
            case .link(let i, let up, let carrier, let removed):
                return removed ? "link \(i) removed" : "link \(i) \(up ? "up" : "down") carrier \(carrier ? "on" : "off")"
            case .address(let i, let removed): return "address \(removed ? "removed from" : "added to") link \(i)"
            case .route(let i, let table, let removed):
                return "route \(removed ? "removed" : "added") in table \(table) via link \(i.map { "\($0)" } ?? "-")"
            case .overrun: return "netlink overrun"
            }
        }
    }

    private let socket: OpaquePointer
    private let reader: NetlinkEventReader
    /// The descriptor to watch for readability (non-blocking).
    public var fd: Int32 { reader.fd }

    public init() throws {
        guard let s = mnl_socket_open(NETLINK_ROUTE) else { throw NetlinkError("mnl_socket_open(route)", errno: errno) }
        let groups =
            UInt32(RTMGRP_LINK) | UInt32(RTMGRP_IPV4_IFADDR) | UInt32(RTMGRP_IPV6_IFADDR) | UInt32(RTMGRP_IPV4_ROUTE)
            | UInt32(RTMGRP_IPV6_ROUTE)
        guard mnl_socket_bind(s, groups, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            let e = errno
            mnl_socket_close(s)
            throw NetlinkError("mnl_socket_bind(rtnetlink groups)", errno: e)
        }
        socket = s
        // A burst (an interface going down flushes many routes) must not overrun the socket.
        reader = NetlinkEventReader(fd: mnl_socket_get_fd(s), receiveBufferBytes: 1 << 20)
    }

    deinit {
        mnl_socket_close(socket)
    }

    /// Reads every pending event without blocking.
    public func drain() -> [Event] {
        reader.drain(overrun: .overrun, Self.parse)
    }

    static func parse(_ h: UnsafePointer<nlmsghdr>) -> Event? {
        let type = Int32(h.pointee.nlmsg_type)
        let payload = mnl_nlmsg_get_payload(h)!
        switch type {
        case Int32(RTM_NEWLINK), Int32(RTM_DELLINK):
            let msg = payload.assumingMemoryBound(to: ifinfomsg.self).pointee
            let flags = msg.ifi_flags
            return .link(
                ifindex: UInt32(bitPattern: msg.ifi_index), up: flags & iffUp != 0,
                carrier: flags & iffLowerUp != 0, removed: type == Int32(RTM_DELLINK))
        case Int32(RTM_NEWADDR), Int32(RTM_DELADDR):
            let msg = payload.assumingMemoryBound(to: ifaddrmsg.self).pointee
            return .address(ifindex: msg.ifa_index, removed: type == Int32(RTM_DELADDR))
        case Int32(RTM_NEWROUTE), Int32(RTM_DELROUTE):
            let msg = payload.assumingMemoryBound(to: rtmsg.self).pointee
            var table = UInt32(msg.rtm_table)
            var oif: UInt32?
            for a in NetlinkSocket.attributes(h, extraHeaderSize: MemoryLayout<rtmsg>.size) {
                if a.type == UInt16(RTA_TABLE.rawValue) { table = a.u32 ?? table }
                if a.type == UInt16(RTA_OIF.rawValue) { oif = a.u32 }
            }
            return .route(ifindex: oif, table: table, removed: type == Int32(RTM_DELROUTE))
        default:
            return nil
        }
    }
}

/// ifi_flags bits (linux/if.h; net/if.h, which CNetlink includes for if_nametoindex, lacks
/// IFF_LOWER_UP and the two headers cannot be included together).
let iffUp: UInt32 = 1 << 0
let iffLowerUp: UInt32 = 1 << 16

extension RouteTables {
    /// Administrative state and carrier of a link, or nil when it does not exist.
    public func linkState(ifindex: UInt32) throws -> (up: Bool, carrier: Bool)? {
        let m = NetlinkSocket.Message(type: UInt16(RTM_GETLINK), flags: 0)
        let ifi = m.putExtraHeader(ifinfomsg.self)
        ifi.pointee.ifi_family = UInt8(AF_UNSPEC)
        ifi.pointee.ifi_index = Int32(bitPattern: ifindex)
        var state: (Bool, Bool)?
        do {
            try socket.dumpOne(m, operation: "get link \(ifindex)") { h in
                let msg = mnl_nlmsg_get_payload(h).assumingMemoryBound(to: ifinfomsg.self).pointee
                state = (msg.ifi_flags & iffUp != 0, msg.ifi_flags & iffLowerUp != 0)
            }
        } catch let e as NetlinkError where e.errno == ENODEV {
            return nil
        }
        return state
    }
}
