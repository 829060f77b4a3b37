import CNetlink

#if canImport(Glibc)
import Glibc
#endif

/// The read side of a netlink socket subscribed to multicast groups (rtnetlink, the MPTCP path
/// manager's events): non-blocking, with a receive buffer sized for the bursts its owner expects.
/// Events that did not fit were dropped by the kernel (ENOBUFS); the owner is told where, so it
/// can re-read the state the lost events were about.
final class NetlinkEventReader {
    /// The descriptor to watch for readability; owned by the socket it came from.
    let fd: Int32
    private let buffer: UnsafeMutableRawPointer
    private static let bufferSize = 65536

    init(fd: Int32, receiveBufferBytes: Int32) {
        self.fd = fd
        var size = receiveBufferBytes
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        buffer = .allocate(byteCount: Self.bufferSize, alignment: 8)
    }

    deinit {
        buffer.deallocate()
    }

    /// Reads every pending message without blocking, in order: each through `parse` (nil skips
    /// it), and `overrun` wherever the kernel reported lost events.
    func drain<Event>(overrun: Event, _ parse: (UnsafePointer<nlmsghdr>) -> Event?) -> [Event] {
        var events: [Event] = []
        while true {
            let n = recv(fd, buffer, Self.bufferSize, 0)
            if n < 0 {
                if errno == EINTR { continue }
                if errno == ENOBUFS {
                    events.append(overrun)
                    continue
                }
                return events
            }
            if n == 0 { return events }
            var remaining = Int32(n)
            var header: UnsafePointer<nlmsghdr>? = UnsafePointer(buffer.assumingMemoryBound(to: nlmsghdr.self))
            while let h = header, mnl_nlmsg_ok(h, remaining) {
                if let e = parse(h) { events.append(e) }
                header = UnsafePointer(mnl_nlmsg_next(h, &remaining))
            }
        }
    }
}
