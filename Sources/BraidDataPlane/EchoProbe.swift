import BraidCore
import CBraidLinux

#if canImport(Glibc)
import Glibc
#endif

/// ICMP echo through one uplink to the concentrator: a raw socket bound to the uplink's address
/// and device, so the probe leaves by that uplink's source rule and table whatever the main
/// table says, and answers are matched by identifier and source. 16 bytes per probe on the wire
/// plus headers: cheap enough to send several times a second on an LTE link.
public final class EchoProbe {
    private let reactor: Reactor
    private let fd: Int32
    private let target: IPAddress
    private let identifier: UInt16
    private let v6: Bool
    private let onReply: (_ sequence: UInt16, _ rttNanos: UInt64) -> Void

    public init(
        reactor: Reactor, source: IPAddress, device: String, target: IPAddress, identifier: UInt16,
        onReply: @escaping (_ sequence: UInt16, _ rttNanos: UInt64) -> Void
    ) throws {
        self.reactor = reactor
        self.target = target
        self.identifier = identifier
        self.onReply = onReply
        let v6 = !target.isIPv4
        self.v6 = v6
        let type = Int32(SOCK_RAW.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        let fd = try syscall(v6 ? "socket(ICMPv6)" : "socket(ICMP)") {
            socket(v6 ? AF_INET6 : AF_INET, type, v6 ? Int32(IPPROTO_ICMPV6) : Int32(IPPROTO_ICMP))
        }
        self.fd = fd
        do {
            let rc = device.withCString {
                setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, $0, socklen_t(strlen($0) + 1))
            }
            if rc < 0 { throw SystemError("setsockopt(SO_BINDTODEVICE, \(device))", errno: errno) }
            try Sockets.bind(fd, to: Endpoint(address: source, port: 0))
            try reactor.register(fd, events: braid_EPOLLIN, handler: ReactorCallback { [weak self] _, _ in self?.receive() })
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    /// Sends echo request `sequence`. False when the kernel refused it (no route: the uplink is
    /// down as far as the host knows), which counts as a lost probe.
    @discardableResult
    public func send(sequence: UInt16) -> Bool {
        var packet = [UInt8](repeating: 0, count: 16)
        packet[0] = v6 ? 128 : 8  // echo request
        packet[4] = UInt8(identifier >> 8)
        packet[5] = UInt8(identifier & 0xff)
        packet[6] = UInt8(sequence >> 8)
        packet[7] = UInt8(sequence & 0xff)
        let now = monotonicNanos()
        for i in 0..<8 { packet[8 + i] = UInt8((now >> (56 - 8 * UInt64(i))) & 0xff) }
        if !v6 {  // the kernel computes the ICMPv6 checksum itself (RFC 3542 §3.1)
            let sum = Self.checksum(packet)
            packet[2] = UInt8(sum >> 8)
            packet[3] = UInt8(sum & 0xff)
        }
        var (ss, len) = Sockets.storage(for: Endpoint(address: target, port: 0))
        let rc = packet.withUnsafeBytes { p in
            withUnsafePointer(to: &ss) { sp in
                sp.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, p.baseAddress, p.count, Int32(MSG_DONTWAIT), $0, len)
                }
            }
        }
        return rc == packet.count
    }

    private func receive() {
        var buffer = [UInt8](repeating: 0, count: 256)
        while true {
            var from = sockaddr_storage()
            var fromLen = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let n = buffer.withUnsafeMutableBytes { b in
                withUnsafeMutablePointer(to: &from) { fp in
                    fp.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, b.baseAddress, b.count, 0, $0, &fromLen) }
                }
            }
            if n <= 0 { return }
            guard Sockets.endpoint(from)?.address == target else { continue }
            // IPv4 raw sockets deliver the IP header; IPv6 ones do not.
            let offset = v6 ? 0 : Int(buffer[0] & 0x0f) * 4
            guard n >= offset + 16 else { continue }
            let icmp = buffer[offset..<Int(n)]
            let base = icmp.startIndex
            guard icmp[base] == (v6 ? 129 : 0) else { continue }  // echo reply
            let id = UInt16(icmp[base + 4]) << 8 | UInt16(icmp[base + 5])
            guard id == identifier else { continue }
            let seq = UInt16(icmp[base + 6]) << 8 | UInt16(icmp[base + 7])
            var sentAt: UInt64 = 0
            for i in 0..<8 { sentAt = sentAt << 8 | UInt64(icmp[base + 8 + i]) }
            let now = monotonicNanos()
            guard sentAt <= now else { continue }
            onReply(seq, now - sentAt)
        }
    }

    public func close() {
        reactor.close(fd)
    }

    /// RFC 1071 Internet checksum.
    static func checksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i + 1 < bytes.count {
            sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
            i += 2
        }
        if i < bytes.count { sum += UInt32(bytes[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }
}
