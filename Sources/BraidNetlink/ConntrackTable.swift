import BraidCore
import CNetlink

#if canImport(Glibc)
import Glibc
#endif

/// ctnetlink mechanism: deletes connection-tracking entries, and with them their NAT mappings.
/// A UDP flow NATed to an uplink that died keeps its mapping (and so its dead source address)
/// until the entry times out, minutes for a flow that keeps sending; deleted, its next packet is
/// tracked anew and NATed to the uplink that carries traffic now.
public final class ConntrackTable {
    let socket: NetlinkSocket

    public init() throws {
        socket = try NetlinkSocket(bus: NETLINK_NETFILTER)
    }

    /// Deletes every entry of `ipv6`'s family whose connection mark, masked with `mask`, is `mark`.
    /// One request: the kernel walks its table and filters (a delete without a tuple is a flush,
    /// which takes a mark and mask filter and the family of the nfgenmsg header).
    public func deleteEntries(mark: UInt32, mask: UInt32, ipv6: Bool) throws {
        let type = UInt16(NFNL_SUBSYS_CTNETLINK) << 8 | UInt16(IPCTNL_MSG_CT_DELETE.rawValue)
        let m = NetlinkSocket.Message(type: type, flags: 0)
        let header = m.putExtraHeader(nfgenmsg.self)
        header.pointee.nfgen_family = UInt8(ipv6 ? AF_INET6 : AF_INET)
        header.pointee.version = UInt8(NFNETLINK_V0)
        header.pointee.res_id = 0
        // ctnetlink reads marks in network byte order.
        m.put(Int(CTA_MARK.rawValue), u32: mark.bigEndian)
        m.put(Int(CTA_MARK_MASK.rawValue), u32: mask.bigEndian)
        let family = ipv6 ? "IPv6" : "IPv4"
        let hex = "0x" + String(mark, radix: 16) + "/0x" + String(mask, radix: 16)
        try socket.request(m, operation: "delete \(family) conntrack entries with mark \(hex)")
    }
}
