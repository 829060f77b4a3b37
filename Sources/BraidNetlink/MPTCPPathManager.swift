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
        try socket.genericFamily(name).id
    }

    private func message(_ cmd: Int, size: Int = NetlinkSocket.Message.size) -> NetlinkSocket.Message {
        let m = NetlinkSocket.Message(type: family, flags: 0, size: size)
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

    // MARK: - userspace path manager (per connection, by token)

    /// Opens a subflow of connection `token` from `local` (with the per-connection address id
    /// `localID`, never 0) to `remote`. The kernel starts the TCP handshake and returns;
    /// MPTCP_EVENT_SUB_ESTABLISHED or SUB_CLOSED tells how it ended.
    public func createSubflow(
        token: UInt32, local: IPAddress, localID: UInt8, backup: Bool, ifindex: UInt32, remote: BraidCore.Endpoint
    ) throws {
        let m = subflowMessage(
            SubflowRequest(token: token, local: local, localID: localID, backup: backup, ifindex: ifindex, remote: remote))
        try socket.request(m, operation: "create subflow \(local) -> \(remote) of MPTCP connection \(hex(token))")
    }

    /// A subflow to open: what `createSubflow` takes, as a value, for `createSubflows`.
    public struct SubflowRequest: Equatable, Sendable {
        public var token: UInt32
        public var local: IPAddress
        public var localID: UInt8
        public var backup: Bool
        public var ifindex: UInt32
        public var remote: BraidCore.Endpoint

        public init(
            token: UInt32, local: IPAddress, localID: UInt8, backup: Bool, ifindex: UInt32, remote: BraidCore.Endpoint
        ) {
            self.token = token
            self.local = local
            self.localID = localID
            self.backup = backup
            self.ifindex = ifindex
            self.remote = remote
        }
    }

    /// Opens several subflows with one send and one read per batch (netlink runs the commands in
    /// order and acknowledges each), where `createSubflow` costs a round trip each: a burst of
    /// new connections asks for two or three subflows apiece. Returns the kernel's errno for
    /// each request (0: the handshake started), in order; throws when the batch itself failed.
    public func createSubflows(_ requests: [SubflowRequest]) throws -> [Int32] {
        var results: [Int32] = []
        results.reserveCapacity(requests.count)
        // In slices, so a burst of thousands holds a few dozen messages at a time, not all of them.
        var start = requests.startIndex
        while start < requests.endIndex {
            let end = min(start + Self.batchSize, requests.endIndex)
            let messages = requests[start..<end].map(subflowMessage)
            results += try socket.requestAll(messages, operation: "create \(messages.count) subflows")
            start = end
        }
        return results
    }

    /// Subflow requests per batch: each message is under 100 bytes, so a batch is one datagram.
    static let batchSize = 64

    private func subflowMessage(_ r: SubflowRequest) -> NetlinkSocket.Message {
        let m = message(Int(MPTCP_PM_CMD_SUBFLOW_CREATE), size: 256)
        m.put(Int(MPTCP_PM_ATTR_TOKEN), u32: r.token)
        m.nest(Int(MPTCP_PM_ATTR_ADDR)) {
            Self.putAddress(m, r.local, port: nil)
            m.put(Int(MPTCP_PM_ADDR_ATTR_ID), u8: r.localID)
            m.put(Int(MPTCP_PM_ADDR_ATTR_FLAGS), u32: r.backup ? Flags.backup.rawValue : 0)
            if r.ifindex != 0 { m.put(Int(MPTCP_PM_ADDR_ATTR_IF_IDX), u32: r.ifindex) }
        }
        m.nest(Int(MPTCP_PM_ATTR_ADDR_REMOTE)) { Self.putAddress(m, r.remote.address, port: r.remote.port) }
        return m
    }

    /// Closes one subflow of connection `token`; its unacknowledged data is sent again on the others.
    public func destroySubflow(token: UInt32, local: BraidCore.Endpoint, remote: BraidCore.Endpoint) throws {
        let m = message(Int(MPTCP_PM_CMD_SUBFLOW_DESTROY))
        m.put(Int(MPTCP_PM_ATTR_TOKEN), u32: token)
        m.nest(Int(MPTCP_PM_ATTR_ADDR)) { Self.putAddress(m, local.address, port: local.port) }
        m.nest(Int(MPTCP_PM_ATTR_ADDR_REMOTE)) { Self.putAddress(m, remote.address, port: remote.port) }
        try socket.request(m, operation: "destroy subflow \(local) -> \(remote) of MPTCP connection \(hex(token))")
    }

    /// Withdraws local address `localID` from connection `token`: the kernel tells the peer
    /// (RM_ADDR, RFC 8684 section 3.4.2) on another subflow, so the peer closes its side even
    /// when no packet can leave from the address any more. The userspace path manager sends it
    /// once, in one ACK, and only while a subflow from the address exists; it does not close that
    /// subflow (the kernel selftests follow it with SUBFLOW_DESTROY, as `destroySubflow` does).
    public func removeAddress(token: UInt32, localID: UInt8) throws {
        let m = message(Int(MPTCP_PM_CMD_REMOVE))
        m.put(Int(MPTCP_PM_ATTR_TOKEN), u32: token)
        m.put(Int(MPTCP_PM_ATTR_LOC_ID), u8: localID)
        try socket.request(m, operation: "remove address id \(localID) from MPTCP connection \(hex(token))")
    }

    /// Marks one subflow of connection `token` as backup or not (MP_PRIO, RFC 8684 section 3.3.8):
    /// both ends then send on it only while no non-backup subflow can.
    public func setBackup(token: UInt32, local: BraidCore.Endpoint, remote: BraidCore.Endpoint, backup: Bool) throws {
        let m = message(Int(MPTCP_PM_CMD_SET_FLAGS))
        m.put(Int(MPTCP_PM_ATTR_TOKEN), u32: token)
        m.nest(Int(MPTCP_PM_ATTR_ADDR)) {
            Self.putAddress(m, local.address, port: local.port)
            m.put(Int(MPTCP_PM_ADDR_ATTR_FLAGS), u32: backup ? Flags.backup.rawValue : 0)
        }
        m.nest(Int(MPTCP_PM_ATTR_ADDR_REMOTE)) { Self.putAddress(m, remote.address, port: remote.port) }
        try socket.request(
            m, operation: "set subflow \(local) -> \(remote) of MPTCP connection \(hex(token)) \(backup ? "backup" : "active")")
    }

    /// Family, address and (host-order, as the kernel expects it here) port of an address nest.
    private static func putAddress(_ m: NetlinkSocket.Message, _ address: IPAddress, port: UInt16?) {
        m.put(Int(MPTCP_PM_ADDR_ATTR_FAMILY), u16: UInt16(address.isIPv4 ? AF_INET : AF_INET6))
        m.put(Int(address.isIPv4 ? MPTCP_PM_ADDR_ATTR_ADDR4 : MPTCP_PM_ADDR_ATTR_ADDR6), bytes: address.bytes)
        if let port { m.put(Int(MPTCP_PM_ADDR_ATTR_PORT), u16: port) }
    }

    /// The sysctl that chooses the network namespace's path manager for MPTCP sockets created
    /// from then on, and its value that selects the userspace one (this daemon opens and closes
    /// subflows per connection). Linux 6.15 renamed `pm_type` (0/1) to `path_manager`
    /// (`kernel`/`userspace`); the one this kernel has is returned. Writing it is the caller's:
    /// the old value must be recorded first (KernelStateFile).
    public static func userspaceSelection() throws -> (sysctl: String, value: String) {
        if access("/proc/sys/net/mptcp/path_manager", F_OK) == 0 { return ("net.mptcp.path_manager", "userspace") }
        if access("/proc/sys/net/mptcp/pm_type", F_OK) == 0 { return ("net.mptcp.pm_type", "1") }
        throw NetlinkError(
            "select the userspace MPTCP path manager: neither net.mptcp.path_manager nor net.mptcp.pm_type",
            errno: ENOENT)
    }
}

func hex(_ token: UInt32) -> String {
    let s = String(token, radix: 16)
    return String(repeating: "0", count: 8 - s.count) + s
}
