import BraidCore
import CNetlink

#if canImport(Glibc)
import Glibc
#endif

/// The in-kernel MPTCP path manager over generic netlink ("mptcp_pm", the family behind
/// `ip mptcp`): endpoints and limits. Mechanism only; which endpoints exist is policy.
public final class MPTCPPathManager {
    private let socket: NetlinkSocket
    private let family: UInt16

    /// Endpoint flags (include/uapi/linux/mptcp.h).
    public struct Flags: OptionSet, Hashable, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let signal = Flags(rawValue: UInt32(MPTCP_PM_ADDR_FLAG_SIGNAL))
        public static let subflow = Flags(rawValue: UInt32(MPTCP_PM_ADDR_FLAG_SUBFLOW))
        public static let backup = Flags(rawValue: UInt32(MPTCP_PM_ADDR_FLAG_BACKUP))
    }

    public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
        public var id: UInt8
        public var address: IPAddress
        public var flags: Flags
        public var ifindex: UInt32

        public var description: String { "endpoint \(id) \(address) flags 0x\(String(flags.rawValue, radix: 16)) ifindex \(ifindex)" }
    }

    public init() throws {
        socket = try NetlinkSocket(bus: NETLINK_GENERIC)
        family = try Self.resolveFamily(socket, name: MPTCP_PM_NAME)
    }

    private static func resolveFamily(_ socket: NetlinkSocket, name: String) throws -> UInt16 {
        let m = NetlinkSocket.Message(type: UInt16(GENL_ID_CTRL), flags: 0)
        let g = m.putExtraHeader(genlmsghdr.self)
        g.pointee.cmd = UInt8(CTRL_CMD_GETFAMILY)
        g.pointee.version = 1
        m.put(Int(CTRL_ATTR_FAMILY_NAME), string: name)
        var id: UInt16? = nil
        do {
            try socket.dumpOne(m, operation: "resolve generic netlink family \(name)") { h in
                for a in NetlinkSocket.attributes(h, extraHeaderSize: MemoryLayout<genlmsghdr>.size)
                where a.type == UInt16(CTRL_ATTR_FAMILY_ID) {
                    id = a.payload.loadUnaligned(as: UInt16.self)
                }
            }
        }
        guard let id else { throw NetlinkError("resolve \(name): kernel without MPTCP", errno: ENOENT) }
        return id
    }

    private func message(_ cmd: Int) -> NetlinkSocket.Message {
        let m = NetlinkSocket.Message(type: family, flags: 0)
        let g = m.putExtraHeader(genlmsghdr.self)
        g.pointee.cmd = UInt8(cmd)
        g.pointee.version = UInt8(MPTCP_PM_VER)
        return m
    }

    /// Adds an endpoint and returns the id the kernel gave it.
    @discardableResult
    public func add(address: IPAddress, flags: Flags, ifindex: UInt32) throws -> UInt8 {
        let m = message(Int(MPTCP_PM_CMD_ADD_ADDR))
        m.nest(Int(MPTCP_PM_ATTR_ADDR) ) {
            m.put(Int(MPTCP_PM_ADDR_ATTR_FAMILY), u16: UInt16(address.isIPv4 ? AF_INET : AF_INET6))
            if address.isIPv4 {
                m.put(Int(MPTCP_PM_ADDR_ATTR_ADDR4), bytes: address.bytes)
            } else {
                m.put(Int(MPTCP_PM_ADDR_ATTR_ADDR6), bytes: address.bytes)
            }
            m.put(Int(MPTCP_PM_ADDR_ATTR_FLAGS), u32: flags.rawValue)
            m.put(Int(MPTCP_PM_ADDR_ATTR_IF_IDX), u32: ifindex)
        }
        try socket.request(m, operation: "add MPTCP endpoint \(address)")
        guard let e = try endpoints().first(where: { $0.address == address }) else {
            throw NetlinkError("add MPTCP endpoint \(address): not listed afterwards", errno: ENOENT)
        }
        return e.id
    }

    public func delete(id: UInt8) throws {
        let m = message(Int(MPTCP_PM_CMD_DEL_ADDR))
        m.nest(Int(MPTCP_PM_ATTR_ADDR)) {
            m.put(Int(MPTCP_PM_ADDR_ATTR_ID), u8: id)
        }
        try socket.request(m, operation: "delete MPTCP endpoint \(id)")
    }

    /// Every endpoint the kernel knows, ours or not.
    public func endpoints() throws -> [Endpoint] {
        let m = message(Int(MPTCP_PM_CMD_GET_ADDR))
        var out: [Endpoint] = []
        try socket.dump(m, operation: "dump MPTCP endpoints") { h in
            for a in NetlinkSocket.attributes(h, extraHeaderSize: MemoryLayout<genlmsghdr>.size)
            where a.type == UInt16(MPTCP_PM_ATTR_ADDR) {
                var e = Endpoint(id: 0, address: .v4(0), flags: [], ifindex: 0)
                for n in NetlinkSocket.attributes(nestedIn: a) {
                    switch Int(n.type) {
                    case MPTCP_PM_ADDR_ATTR_ID: e.id = n.payload.first ?? 0
                    case MPTCP_PM_ADDR_ATTR_ADDR4, MPTCP_PM_ADDR_ATTR_ADDR6:
                        e.address = IPAddress(bytes: n.bytes) ?? e.address
                    case MPTCP_PM_ADDR_ATTR_FLAGS: e.flags = Flags(rawValue: n.u32 ?? 0)
                    case MPTCP_PM_ADDR_ATTR_IF_IDX: e.ifindex = n.u32 ?? 0
                    default: break
                    }
                }
                out.append(e)
            }
        }
        return out
    }

    /// Sets the per-connection limits: additional subflows, and ADD_ADDRs accepted from the peer.
    public func setLimits(subflows: UInt32, addAddrAccepted: UInt32) throws {
        let m = message(Int(MPTCP_PM_CMD_SET_LIMITS))
        m.put(Int(MPTCP_PM_ATTR_RCV_ADD_ADDRS), u32: addAddrAccepted)
        m.put(Int(MPTCP_PM_ATTR_SUBFLOWS), u32: subflows)
        try socket.request(m, operation: "set MPTCP limits subflows \(subflows) add_addr_accepted \(addAddrAccepted)")
    }

    public func limits() throws -> (subflows: UInt32, addAddrAccepted: UInt32) {
        let m = message(Int(MPTCP_PM_CMD_GET_LIMITS))
        var result: (UInt32, UInt32) = (0, 0)
        try socket.dumpOne(m, operation: "get MPTCP limits") { h in
            for a in NetlinkSocket.attributes(h, extraHeaderSize: MemoryLayout<genlmsghdr>.size) {
                if a.type == UInt16(MPTCP_PM_ATTR_SUBFLOWS) { result.0 = a.u32 ?? 0 }
                if a.type == UInt16(MPTCP_PM_ATTR_RCV_ADD_ADDRS) { result.1 = a.u32 ?? 0 }
            }
        }
        return result
    }
}
