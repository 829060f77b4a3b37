import BraidCore
import CNetlink

#if canImport(Glibc)
import Glibc
#endif

/// rtnetlink mechanism: routes, policy rules and address/route queries. It takes orders; which
/// uplink gets which table is decided by the gateway's policy.
public final class RouteTables {
    let socket: NetlinkSocket

    public init() throws {
        socket = try NetlinkSocket(bus: NETLINK_ROUTE)
    }

    /// Kernel interface index, or nil when the device does not exist.
    public static func interfaceIndex(_ name: String) -> UInt32? {
        let i = if_nametoindex(name)
        return i == 0 ? nil : i
    }

    /// Addresses configured on `ifindex` with their prefix lengths (IPv6 link-local excluded:
    /// subflows to the concentrator cannot use them).
    public func addresses(ifindex: UInt32) throws -> [IPPrefix] {
        let m = NetlinkSocket.Message(type: UInt16(RTM_GETADDR), flags: 0)
        let ifa = m.putExtraHeader(ifaddrmsg.self)
        ifa.pointee.ifa_family = UInt8(AF_UNSPEC)
        var out: [IPPrefix] = []
        try socket.dump(m, operation: "dump addresses") { h in
            let msg = mnl_nlmsg_get_payload(h).assumingMemoryBound(to: ifaddrmsg.self).pointee
            guard msg.ifa_index == ifindex else { return }
            var local: [UInt8]? = nil
            var address: [UInt8]? = nil
            for a in NetlinkSocket.attributes(h, extraHeaderSize: MemoryLayout<ifaddrmsg>.size) {
                if a.type == UInt16(IFA_LOCAL) { local = a.bytes }
                if a.type == UInt16(IFA_ADDRESS) { address = a.bytes }
            }
            guard let raw = local ?? address, let ip = IPAddress(bytes: raw) else { return }
            if case .v6(let b) = ip, b[0] == 0xfe, b[1] & 0xc0 == 0x80 { return }
            if let p = IPPrefix(address: ip, length: Int(msg.ifa_prefixlen)) { out.append(p) }
        }
        return out
    }

    /// The next hop of the main table's default route out of `ifindex`, as a DHCP or PPP client
    /// leaves it. nil when there is none (a point-to-point link may need no gateway).
    public func defaultGateway(ifindex: UInt32, ipv6: Bool) throws -> IPAddress? {
        let m = NetlinkSocket.Message(type: UInt16(RTM_GETROUTE), flags: 0)
        let rt = m.putExtraHeader(rtmsg.self)
        rt.pointee.rtm_family = UInt8(ipv6 ? AF_INET6 : AF_INET)
        var found: IPAddress? = nil
        try socket.dump(m, operation: "dump routes") { h in
            let msg = mnl_nlmsg_get_payload(h).assumingMemoryBound(to: rtmsg.self).pointee
            guard msg.rtm_dst_len == 0, msg.rtm_type == UInt8(RTN_UNICAST) else { return }
            var table = UInt32(msg.rtm_table)
            var oif: UInt32? = nil
            var gateway: IPAddress? = nil
            for a in NetlinkSocket.attributes(h, extraHeaderSize: MemoryLayout<rtmsg>.size) {
                switch Int(a.type) {
                case Int(RTA_TABLE.rawValue): table = a.u32 ?? table
                case Int(RTA_OIF.rawValue): oif = a.u32
                case Int(RTA_GATEWAY.rawValue): gateway = IPAddress(bytes: a.bytes)
                default: break
                }
            }
            if table == UInt32(RT_TABLE_MAIN.rawValue), oif == ifindex, found == nil { found = gateway }
        }
        return found
    }

    /// A route in `table`. `type` is RTN_UNICAST (via `gateway` out of `ifindex`) or RTN_LOCAL
    /// (deliver to this host: what TPROXY needs for intercepted packets).
    public struct Route: Hashable, Sendable, CustomStringConvertible {
        public var table: UInt32
        public var destination: IPPrefix
        public var gateway: IPAddress?
        public var ifindex: UInt32
        public var local: Bool

        public init(table: UInt32, destination: IPPrefix, gateway: IPAddress?, ifindex: UInt32, local: Bool = false) {
            self.table = table
            self.destination = destination
            self.gateway = gateway
            self.ifindex = ifindex
            self.local = local
        }

        public var description: String {
            (local ? "local " : "") + "\(destination)" + (gateway.map { " via \($0)" } ?? "")
                + " ifindex \(ifindex) table \(table)"
        }
    }

    /// The unicast and local routes in `tables` (both families): what a run that was killed may
    /// have left there.
    public func routes(inTables tables: Set<UInt32>) throws -> [Route] {
        var out: [Route] = []
        for v6 in [false, true] {
            let m = NetlinkSocket.Message(type: UInt16(RTM_GETROUTE), flags: 0)
            let rt = m.putExtraHeader(rtmsg.self)
            rt.pointee.rtm_family = UInt8(v6 ? AF_INET6 : AF_INET)
            try socket.dump(m, operation: "dump routes") { h in
                let msg = mnl_nlmsg_get_payload(h).assumingMemoryBound(to: rtmsg.self).pointee
                guard msg.rtm_type == UInt8(RTN_UNICAST) || msg.rtm_type == UInt8(RTN_LOCAL) else { return }
                var table = UInt32(msg.rtm_table)
                var destination: IPAddress? = nil
                var gateway: IPAddress? = nil
                var oif: UInt32 = 0
                for a in NetlinkSocket.attributes(h, extraHeaderSize: MemoryLayout<rtmsg>.size) {
                    switch Int(a.type) {
                    case Int(RTA_TABLE.rawValue): table = a.u32 ?? table
                    case Int(RTA_DST.rawValue): destination = IPAddress(bytes: a.bytes)
                    case Int(RTA_OIF.rawValue): oif = a.u32 ?? 0
                    case Int(RTA_GATEWAY.rawValue): gateway = IPAddress(bytes: a.bytes)
                    default: break
                    }
                }
                let any = IPPrefix(v6 ? "::/0" : "0.0.0.0/0")!.address
                guard tables.contains(table),
                    let prefix = IPPrefix(address: destination ?? any, length: Int(msg.rtm_dst_len))
                else { return }
                out.append(
                    Route(table: table, destination: prefix, gateway: gateway, ifindex: oif,
                        local: msg.rtm_type == UInt8(RTN_LOCAL)))
            }
        }
        return out
    }

    public func add(_ route: Route) throws {
        try send(route, type: UInt16(RTM_NEWROUTE), flags: NLM_F_CREATE | NLM_F_REPLACE, operation: "add route \(route)")
    }

    public func delete(_ route: Route) throws {
        try send(route, type: UInt16(RTM_DELROUTE), flags: 0, operation: "delete route \(route)")
    }

    private func send(_ r: Route, type: UInt16, flags: Int32, operation: String) throws {
        let m = NetlinkSocket.Message(type: type, flags: flags)
        let rt = m.putExtraHeader(rtmsg.self)
        rt.pointee.rtm_family = UInt8(r.destination.address.isIPv4 ? AF_INET : AF_INET6)
        rt.pointee.rtm_dst_len = UInt8(r.destination.length)
        rt.pointee.rtm_table = UInt8(RT_TABLE_UNSPEC.rawValue)
        rt.pointee.rtm_protocol = UInt8(RTPROT_STATIC)
        rt.pointee.rtm_scope = UInt8(r.local ? RT_SCOPE_HOST.rawValue : RT_SCOPE_UNIVERSE.rawValue)
        rt.pointee.rtm_type = UInt8(r.local ? RTN_LOCAL : RTN_UNICAST)
        m.put(Int(RTA_TABLE.rawValue), u32: r.table)
        m.put(Int(RTA_DST.rawValue), bytes: r.destination.address.bytes)
        if let g = r.gateway { m.put(Int(RTA_GATEWAY.rawValue), bytes: g.bytes) }
        m.put(Int(RTA_OIF.rawValue), u32: r.ifindex)
        try socket.request(m, operation: operation)
    }

    /// A policy rule: packets from `source` (or carrying `fwmark`) look up `table`.
    public struct Rule: Hashable, Sendable, CustomStringConvertible {
        public var ipv6: Bool
        public var priority: UInt32
        public var table: UInt32
        public var source: IPPrefix?
        public var fwmark: UInt32?
        /// `suppress_prefixlength`: routes of the table this long or shorter are ignored (0: all but
        /// default routes apply), so the next rule decides where the default goes.
        public var suppressPrefixLength: UInt32?

        public init(
            ipv6: Bool, priority: UInt32, table: UInt32, source: IPPrefix? = nil, fwmark: UInt32? = nil,
            suppressPrefixLength: UInt32? = nil
        ) {
            self.ipv6 = ipv6
            self.priority = priority
            self.table = table
            self.source = source
            self.fwmark = fwmark
            self.suppressPrefixLength = suppressPrefixLength
        }

        public var description: String {
            "\(ipv6 ? "ipv6" : "ipv4") rule pref \(priority)" + (source.map { " from \($0)" } ?? "")
                + (fwmark.map { " fwmark \($0)" } ?? "") + " lookup \(table)"
                + (suppressPrefixLength.map { " suppress_prefixlength \($0)" } ?? "")
        }
    }

    /// Every policy rule of both families that looks up a table (`ip rule` lists them).
    public func rules() throws -> [Rule] {
        var out: [Rule] = []
        for v6 in [false, true] {
            let m = NetlinkSocket.Message(type: UInt16(RTM_GETRULE), flags: 0)
            let fr = m.putExtraHeader(fib_rule_hdr.self)
            fr.pointee.family = UInt8(v6 ? AF_INET6 : AF_INET)
            try socket.dump(m, operation: "dump rules") { h in
                let hdr = mnl_nlmsg_get_payload(h).assumingMemoryBound(to: fib_rule_hdr.self).pointee
                guard hdr.action == UInt8(FR_ACT_TO_TBL) else { return }
                var rule = Rule(ipv6: v6, priority: 0, table: UInt32(hdr.table))
                for a in NetlinkSocket.attributes(h, extraHeaderSize: MemoryLayout<fib_rule_hdr>.size) {
                    switch Int(a.type) {
                    case Int(FRA_PRIORITY): rule.priority = a.u32 ?? 0
                    case Int(FRA_TABLE): rule.table = a.u32 ?? rule.table
                    case Int(FRA_FWMARK): rule.fwmark = a.u32
                    // Always sent; all ones when the rule has none.
                    case Int(FRA_SUPPRESS_PREFIXLEN):
                        rule.suppressPrefixLength = a.u32.flatMap { $0 == UInt32.max ? nil : $0 }
                    case Int(FRA_SRC):
                        rule.source = IPAddress(bytes: a.bytes).flatMap {
                            IPPrefix(address: $0, length: Int(hdr.src_len))
                        }
                    default: break
                    }
                }
                out.append(rule)
            }
        }
        return out
    }

    public func add(_ rule: Rule) throws {
        try send(rule, type: UInt16(RTM_NEWRULE), flags: NLM_F_CREATE | NLM_F_EXCL, operation: "add \(rule)")
    }

    public func delete(_ rule: Rule) throws {
        try send(rule, type: UInt16(RTM_DELRULE), flags: 0, operation: "delete \(rule)")
    }

    private func send(_ r: Rule, type: UInt16, flags: Int32, operation: String) throws {
        let m = NetlinkSocket.Message(type: type, flags: flags)
        let fr = m.putExtraHeader(fib_rule_hdr.self)
        fr.pointee.family = UInt8(r.ipv6 ? AF_INET6 : AF_INET)
        fr.pointee.action = UInt8(FR_ACT_TO_TBL)
        fr.pointee.table = UInt8(RT_TABLE_UNSPEC.rawValue)
        if let s = r.source {
            fr.pointee.src_len = UInt8(s.length)
            m.put(Int(FRA_SRC), bytes: s.address.bytes)
        }
        if let mark = r.fwmark {
            m.put(Int(FRA_FWMARK), u32: mark)
            m.put(Int(FRA_FWMASK), u32: 0xffff_ffff)
        }
        if let length = r.suppressPrefixLength { m.put(Int(FRA_SUPPRESS_PREFIXLEN), u32: length) }
        m.put(Int(FRA_PRIORITY), u32: r.priority)
        m.put(Int(FRA_TABLE), u32: r.table)
        try socket.request(m, operation: operation)
    }
}
