import BraidCore
import CNetlink

#if canImport(Glibc)
import Glibc
#endif

/// One event of the MPTCP path manager's multicast group (`mptcp_pm_events`): a connection or
/// one of its subflows was created, established or closed, or changed priority.
public struct MPTCPEvent: Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Equatable, Sendable {
        case created, established, closed, announced, removed
        case subflowEstablished, subflowClosed, subflowPriority
        case other(UInt8)
    }

    public var kind: Kind
    /// The connection's local token: how every path-manager command names it.
    public var token: UInt32
    /// The subflow's (for connection events: the first subflow's) local and remote address and port.
    public var local: Endpoint?
    public var remote: Endpoint?
    public var localID: UInt8?
    public var backup = false
    /// The socket error that closed a subflow (errno), when there was one.
    public var error: UInt8?
    /// The connection was accepted here rather than opened from here.
    public var serverSide = false
    /// Why the peer reset a subflow, when its reset carried MP_TCPRST (RFC 8684 section 3.6).
    public var resetReason: ResetReason?

    /// MP_TCPRST reason codes (RFC 8684 section 3.6, `MPTCP_RST_*` in linux/mptcp.h).
    public struct ResetReason: RawRepresentable, Equatable, Hashable, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// "Administratively prohibited": what Linux answers an MP_JOIN with when the connection
        /// already has as many subflows as its path manager allows (or is not fully established).
        public static let prohibited = ResetReason(rawValue: UInt32(MPTCP_RST_EPROHIBIT))
    }

    public init(kind: Kind, token: UInt32) {
        self.kind = kind
        self.token = token
    }

    public var description: String {
        var s = "\(kind) \(hex(token))"
        if let local, let remote { s += " \(local) -> \(remote)" }
        if let localID { s += " id \(localID)" }
        if backup { s += " backup" }
        if let error, error != 0 { s += " error \(error)" }
        if let resetReason { s += " reset reason \(resetReason.rawValue)" }
        return s
    }
}

/// Listens to the MPTCP path manager's events, non-blocking. Events that did not fit the socket
/// buffer are lost (ENOBUFS); that is reported as `.overrun` and the owner must assume any
/// subflow may have come or gone since.
public final class MPTCPEventMonitor {
    public enum Event: Equatable, Sendable {
        case mptcp(MPTCPEvent)
        case overrun
    }

    private let socket: NetlinkSocket
    private let reader: NetlinkEventReader
    /// The descriptor to watch for readability.
    public var fd: Int32 { reader.fd }

    public init() throws {
        socket = try NetlinkSocket(bus: NETLINK_GENERIC)
        let family = try socket.genericFamily(MPTCP_PM_NAME)
        guard let group = family.groups[MPTCP_PM_EV_GRP_NAME] else {
            throw NetlinkError("join \(MPTCP_PM_EV_GRP_NAME): the kernel's MPTCP family has no such group", errno: ENOENT)
        }
        // A burst of connections opens several subflows each; 4 MiB holds tens of thousands of events.
        reader = NetlinkEventReader(
            fd: try socket.join(group: group, operation: "join \(MPTCP_PM_EV_GRP_NAME)"), receiveBufferBytes: 4 << 20)
    }

    /// Reads every pending event without blocking.
    public func drain() -> [Event] {
        reader.drain(overrun: .overrun) { Self.parse($0).map(Event.mptcp) }
    }

    static func parse(_ h: UnsafePointer<nlmsghdr>) -> MPTCPEvent? {
        guard Int32(h.pointee.nlmsg_type) >= NLMSG_MIN_TYPE else { return nil }
        let cmd = mnl_nlmsg_get_payload(h).assumingMemoryBound(to: genlmsghdr.self).pointee.cmd
        let kind: MPTCPEvent.Kind
        switch Int(cmd) {
        case Int(MPTCP_EVENT_CREATED.rawValue): kind = .created
        case Int(MPTCP_EVENT_ESTABLISHED.rawValue): kind = .established
        case Int(MPTCP_EVENT_CLOSED.rawValue): kind = .closed
        case Int(MPTCP_EVENT_ANNOUNCED.rawValue): kind = .announced
        case Int(MPTCP_EVENT_REMOVED.rawValue): kind = .removed
        case Int(MPTCP_EVENT_SUB_ESTABLISHED.rawValue): kind = .subflowEstablished
        case Int(MPTCP_EVENT_SUB_CLOSED.rawValue): kind = .subflowClosed
        case Int(MPTCP_EVENT_SUB_PRIORITY.rawValue): kind = .subflowPriority
        default: kind = .other(cmd)
        }
        var event = MPTCPEvent(kind: kind, token: 0)
        var saddr: IPAddress?
        var daddr: IPAddress?
        var sport: UInt16 = 0
        var dport: UInt16 = 0
        var hasToken = false
        for a in NetlinkSocket.attributes(h, extraHeaderSize: MemoryLayout<genlmsghdr>.size) {
            switch Int(a.type) {
            case Int(MPTCP_ATTR_TOKEN.rawValue):
                if let t = a.u32 {
                    event.token = t
                    hasToken = true
                }
            case Int(MPTCP_ATTR_SADDR4.rawValue), Int(MPTCP_ATTR_SADDR6.rawValue): saddr = IPAddress(bytes: a.bytes)
            case Int(MPTCP_ATTR_DADDR4.rawValue), Int(MPTCP_ATTR_DADDR6.rawValue): daddr = IPAddress(bytes: a.bytes)
            // Ports are big-endian here (be16 in the uapi header), unlike the command attributes.
            case Int(MPTCP_ATTR_SPORT.rawValue): sport = bigEndian16(a.bytes)
            case Int(MPTCP_ATTR_DPORT.rawValue): dport = bigEndian16(a.bytes)
            case Int(MPTCP_ATTR_LOC_ID.rawValue): event.localID = a.bytes.first
            case Int(MPTCP_ATTR_BACKUP.rawValue): event.backup = (a.bytes.first ?? 0) != 0
            case Int(MPTCP_ATTR_ERROR.rawValue): event.error = a.bytes.first
            case Int(MPTCP_ATTR_SERVER_SIDE.rawValue): event.serverSide = (a.bytes.first ?? 0) != 0
            case Int(MPTCP_ATTR_RESET_REASON.rawValue): event.resetReason = a.u32.map(MPTCPEvent.ResetReason.init)
            default: break
            }
        }
        guard hasToken else { return nil }
        // IPv4 peers of an IPv6 socket arrive as mapped addresses; name them as IPv4.
        if let s = saddr { event.local = Endpoint(address: unmapped(s), port: sport) }
        if let d = daddr { event.remote = Endpoint(address: unmapped(d), port: dport) }
        return event
    }

    private static func bigEndian16(_ b: [UInt8]) -> UInt16 {
        b.count >= 2 ? UInt16(b[0]) << 8 | UInt16(b[1]) : 0
    }

    private static func unmapped(_ a: IPAddress) -> IPAddress {
        if case .v6(let bytes) = a, let v4 = IPAddress(mappedIPv6Bytes: bytes) { return v4 }
        return a
    }
}
