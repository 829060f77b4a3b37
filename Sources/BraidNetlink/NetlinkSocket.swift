import BraidCore
import CNetlink

#if canImport(Glibc)
import Glibc
#endif

/// BraidNetlink's errors are the project's system-call errors: the operation and the kernel's errno.
public typealias NetlinkError = SystemError

/// A netlink attribute read off a message: its type (nested flag cleared) and payload.
struct NetlinkAttribute {
    var type: UInt16
    var payload: UnsafeRawBufferPointer

    var u32: UInt32? { payload.count >= 4 ? payload.loadUnaligned(as: UInt32.self) : nil }
    var bytes: [UInt8] { Array(payload) }
}

/// A libmnl socket with request/ack and dump helpers. Not thread-safe: one owner at a time.
final class NetlinkSocket {
    private let socket: OpaquePointer
    private let portID: UInt32
    private var sequence: UInt32
    private let bus: Int32

    init(bus: Int32) throws {
        guard let s = mnl_socket_open(bus) else { throw NetlinkError("mnl_socket_open", errno: errno) }
        guard mnl_socket_bind(s, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            let e = errno
            mnl_socket_close(s)
            throw NetlinkError("mnl_socket_bind", errno: e)
        }
        socket = s
        portID = mnl_socket_get_portid(s)
        sequence = UInt32(truncatingIfNeeded: time(nil))
        self.bus = bus
    }

    deinit {
        mnl_socket_close(socket)
        receiveBuffer.deallocate()
    }

    /// A message under construction in its own buffer.
    final class Message {
        let buffer: UnsafeMutableRawPointer
        let header: UnsafeMutablePointer<nlmsghdr>
        static let size = 8192  // MNL_SOCKET_BUFFER_SIZE is a macro calling getpagesize()

        /// `size`: room for the whole message; the default fits any request braid builds, a
        /// smaller one suits the small requests sent many times (a subflow per connection).
        init(type: UInt16, flags: Int32, size: Int = Message.size) {
            buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
            buffer.initializeMemory(as: UInt8.self, repeating: 0, count: size)
            header = mnl_nlmsg_put_header(buffer)
            header.pointee.nlmsg_type = type
            header.pointee.nlmsg_flags = UInt16(NLM_F_REQUEST | flags)
        }

        deinit { buffer.deallocate() }

        /// Reserves and zeroes the family header (rtmsg, ifaddrmsg, genlmsghdr, ...).
        func putExtraHeader<T>(_ type: T.Type) -> UnsafeMutablePointer<T> {
            mnl_nlmsg_put_extra_header(header, MemoryLayout<T>.size).bindMemory(to: T.self, capacity: 1)
        }

        func put(_ type: Int, u32 v: UInt32) { mnl_attr_put_u32(header, UInt16(type), v) }
        func put(_ type: Int, u16 v: UInt16) { mnl_attr_put_u16(header, UInt16(type), v) }
        func put(_ type: Int, u8 v: UInt8) { mnl_attr_put_u8(header, UInt16(type), v) }
        func put(_ type: Int, bytes: [UInt8]) {
            bytes.withUnsafeBytes { mnl_attr_put(header, UInt16(type), bytes.count, $0.baseAddress) }
        }
        func put(_ type: Int, string: String) { mnl_attr_put_strz(header, UInt16(type), string) }
        func nest(_ type: Int, _ body: () -> Void) {
            let n = mnl_attr_nest_start(header, UInt16(type))
            body()
            mnl_attr_nest_end(header, n)
        }
    }

    /// Sends `message` and waits for the kernel's acknowledgement. Throws the kernel's errno.
    /// `operation` names the request in an error; it is only built for one.
    func request(_ message: Message, operation: @autoclosure () -> String) throws {
        message.header.pointee.nlmsg_flags |= UInt16(NLM_F_ACK)
        _ = try exchange(message, operation: operation) { _ in }
    }

    /// Sends a dump request and calls `each` for every message of the reply.
    func dump(
        _ message: Message, operation: @autoclosure () -> String, _ each: (UnsafePointer<nlmsghdr>) -> Void
    ) throws {
        message.header.pointee.nlmsg_flags |= UInt16(NLM_F_DUMP)
        _ = try exchange(message, operation: operation, each)
    }

    /// Sends a request that the kernel answers with one message (a "get"), and reads it.
    func dumpOne(
        _ message: Message, operation: @autoclosure () -> String, _ each: (UnsafePointer<nlmsghdr>) -> Void
    ) throws {
        _ = try exchange(message, operation: operation, each)
    }

    /// Requests the kernel executes in one send (the messages back to back in one datagram,
    /// which netlink processes in order), each acknowledged on its own: errno per message, 0 for
    /// success, in the order given. One system call each way instead of a round trip per request,
    /// for the commands a burst of new connections brings (two subflows each).
    /// Throws only when the batch could not be sent or its answers not read.
    func requestAll(_ messages: [Message], operation: @autoclosure () -> String) throws -> [Int32] {
        var results = [Int32](repeating: 0, count: messages.count)
        var start = 0
        while start < messages.count {
            // As many as fit the send buffer; each answer (an ack, or an error quoting the
            // request) fits the receive buffer many times over.
            var end = start
            var length = 0
            while end < messages.count {
                let l = Int(messages[end].header.pointee.nlmsg_len)
                guard length + l <= Self.batchBytes || end == start else { break }
                length += (l + 3) & ~3
                end += 1
            }
            try exchangeBatch(messages[start..<end], length: length, into: &results, offset: start, operation: operation)
            start = end
        }
        return results
    }

    /// Bytes per batch datagram: well inside the default socket buffers.
    static let batchBytes = 16384

    private func exchangeBatch(
        _ messages: ArraySlice<Message>, length: Int, into results: inout [Int32], offset: Int,
        operation: () -> String
    ) throws {
        let out = UnsafeMutableRawPointer.allocate(byteCount: length, alignment: 8)
        defer { out.deallocate() }
        var at = 0
        let first = sequence &+ 1
        for m in messages {
            sequence &+= 1
            m.header.pointee.nlmsg_seq = sequence
            m.header.pointee.nlmsg_flags |= UInt16(NLM_F_ACK)
            let l = Int(m.header.pointee.nlmsg_len)
            out.advanced(by: at).copyMemory(from: m.buffer, byteCount: l)
            at += (l + 3) & ~3
        }
        guard mnl_socket_sendto(socket, out, length) >= 0 else {
            throw NetlinkError("\(operation()): sendto", errno: errno)
        }
        var answered = 0
        while answered < messages.count {
            let n = mnl_socket_recvfrom(socket, receiveBuffer, Self.receiveSize)
            if n < 0 {
                if errno == EINTR { continue }
                throw NetlinkError("\(operation()): recvfrom", errno: errno)
            }
            var remaining = Int32(n)
            var header: UnsafePointer<nlmsghdr>? = UnsafePointer(receiveBuffer.assumingMemoryBound(to: nlmsghdr.self))
            while let h = header, mnl_nlmsg_ok(h, remaining) {
                let index = Int(h.pointee.nlmsg_seq &- first)
                if h.pointee.nlmsg_pid == portID, index >= 0, index < messages.count,
                    Int32(h.pointee.nlmsg_type) == NLMSG_ERROR
                {
                    let err = mnl_nlmsg_get_payload(h).assumingMemoryBound(to: nlmsgerr.self).pointee
                    results[offset + index] = -err.error
                    answered += 1
                }
                header = UnsafePointer(mnl_nlmsg_next(h, &remaining))
            }
        }
    }

    /// Where answers are read: one buffer for the socket's life rather than one per request.
    private static let receiveSize = 32768
    private let receiveBuffer = UnsafeMutableRawPointer.allocate(byteCount: NetlinkSocket.receiveSize, alignment: 8)

    private func exchange(
        _ message: Message, operation: () -> String, _ each: (UnsafePointer<nlmsghdr>) -> Void
    ) throws {
        sequence &+= 1
        let seq = sequence
        message.header.pointee.nlmsg_seq = seq
        let length = Int(message.header.pointee.nlmsg_len)
        guard mnl_socket_sendto(socket, message.buffer, length) >= 0 else {
            throw NetlinkError("\(operation()): sendto", errno: errno)
        }
        let size = Self.receiveSize
        let buffer = receiveBuffer
        while true {
            let n = mnl_socket_recvfrom(socket, buffer, size)
            if n < 0 {
                if errno == EINTR { continue }
                throw NetlinkError("\(operation()): recvfrom", errno: errno)
            }
            var remaining = Int32(n)
            var header: UnsafePointer<nlmsghdr>? = UnsafePointer(buffer.assumingMemoryBound(to: nlmsghdr.self))
            while let h = header, mnl_nlmsg_ok(h, remaining) {
                guard h.pointee.nlmsg_seq == seq, h.pointee.nlmsg_pid == portID else {
                    header = UnsafePointer(mnl_nlmsg_next(h, &remaining))
                    continue  // a late reply to an earlier request
                }
                switch Int32(h.pointee.nlmsg_type) {
                case NLMSG_DONE:
                    return
                case NLMSG_ERROR:
                    let err = mnl_nlmsg_get_payload(h).assumingMemoryBound(to: nlmsgerr.self).pointee
                    if err.error == 0 { return }  // the acknowledgement
                    throw NetlinkError(operation(), errno: -err.error)
                default:
                    each(h)
                    if h.pointee.nlmsg_flags & UInt16(NLM_F_MULTI) == 0 { return }
                }
                header = UnsafePointer(mnl_nlmsg_next(h, &remaining))
            }
        }
    }

    /// Joins a multicast group and returns the socket's descriptor, to read its events from.
    func join(group: UInt32, operation: String) throws -> Int32 {
        var g = group
        guard mnl_socket_setsockopt(socket, NETLINK_ADD_MEMBERSHIP, &g, socklen_t(MemoryLayout<UInt32>.size)) == 0 else {
            throw NetlinkError(operation, errno: errno)
        }
        return mnl_socket_get_fd(socket)
    }

    /// A generic netlink family's id and its multicast groups by name (CTRL_CMD_GETFAMILY).
    func genericFamily(_ name: String) throws -> (id: UInt16, groups: [String: UInt32]) {
        let m = Message(type: UInt16(GENL_ID_CTRL), flags: 0)
        let g = m.putExtraHeader(genlmsghdr.self)
        g.pointee.cmd = UInt8(CTRL_CMD_GETFAMILY)
        g.pointee.version = 1
        m.put(Int(CTRL_ATTR_FAMILY_NAME), string: name)
        var id: UInt16?
        var groups: [String: UInt32] = [:]
        try dumpOne(m, operation: "resolve generic netlink family \(name)") { h in
            for a in Self.attributes(h, extraHeaderSize: MemoryLayout<genlmsghdr>.size) {
                switch Int32(a.type) {
                case Int32(CTRL_ATTR_FAMILY_ID):
                    id = a.payload.loadUnaligned(as: UInt16.self)
                case Int32(CTRL_ATTR_MCAST_GROUPS):
                    for group in Self.attributes(nestedIn: a) {
                        var groupName: String?
                        var groupID: UInt32?
                        for field in Self.attributes(nestedIn: group) {
                            if field.type == UInt16(CTRL_ATTR_MCAST_GRP_NAME) {
                                groupName = String(decoding: field.bytes.prefix { $0 != 0 }, as: UTF8.self)
                            }
                            if field.type == UInt16(CTRL_ATTR_MCAST_GRP_ID) { groupID = field.u32 }
                        }
                        if let groupName, let groupID { groups[groupName] = groupID }
                    }
                default: break
                }
            }
        }
        guard let id else { throw NetlinkError("resolve \(name): kernel without it", errno: ENOENT) }
        return (id, groups)
    }

    /// Attributes of `header` after a family header of `extraHeaderSize` bytes.
    static func attributes(_ header: UnsafePointer<nlmsghdr>, extraHeaderSize: Int) -> [NetlinkAttribute] {
        let start = mnl_nlmsg_get_payload_offset(header, extraHeaderSize)!
        let tail = mnl_nlmsg_get_payload_tail(header)!
        return attributes(from: start, length: tail - start)
    }

    /// Attributes inside a nested attribute.
    static func attributes(nestedIn a: NetlinkAttribute) -> [NetlinkAttribute] {
        guard let base = a.payload.baseAddress else { return [] }
        return attributes(from: base, length: a.payload.count)
    }

    private static func attributes(from start: UnsafeRawPointer, length: Int) -> [NetlinkAttribute] {
        var out: [NetlinkAttribute] = []
        var attr = start.assumingMemoryBound(to: nlattr.self)
        var remaining = length
        while remaining > 0, mnl_attr_ok(attr, Int32(remaining)) {
            let type = mnl_attr_get_type(attr)
            let len = Int(mnl_attr_get_payload_len(attr))
            out.append(
                NetlinkAttribute(
                    type: type, payload: UnsafeRawBufferPointer(start: mnl_attr_get_payload(attr), count: len)))
            let next = UnsafeRawPointer(mnl_attr_next(attr)!)
            remaining -= next - UnsafeRawPointer(attr)
            attr = next.assumingMemoryBound(to: nlattr.self)
        }
        return out
    }
}
