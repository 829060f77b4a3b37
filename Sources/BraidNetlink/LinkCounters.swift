import CNetlink

#if canImport(Glibc)
import Glibc
#endif

extension RouteTables {
    /// A device's byte counters since it was created (every packet it carried, headers included,
    /// whoever sent it), from the kernel's 64-bit link statistics (RTM_GETLINK, IFLA_STATS64);
    /// nil when the device does not exist.
    public func linkBytes(ifindex: UInt32) throws -> (received: UInt64, sent: UInt64)? {
        let m = NetlinkSocket.Message(type: UInt16(RTM_GETLINK), flags: 0)
        let ifi = m.putExtraHeader(ifinfomsg.self)
        ifi.pointee.ifi_family = UInt8(AF_UNSPEC)
        ifi.pointee.ifi_index = Int32(bitPattern: ifindex)
        var out: (UInt64, UInt64)?
        do {
            try socket.dumpOne(m, operation: "get link statistics \(ifindex)") { h in
                for a in NetlinkSocket.attributes(h, extraHeaderSize: MemoryLayout<ifinfomsg>.size)
                where a.type == UInt16(IFLA_STATS64) && a.payload.count >= MemoryLayout<rtnl_link_stats64>.size {
                    let stats = a.payload.loadUnaligned(as: rtnl_link_stats64.self)
                    out = (stats.rx_bytes, stats.tx_bytes)
                }
            }
        } catch let e as NetlinkError where e.errno == ENODEV {
            return nil
        }
        return out
    }
}
