import BraidCore
import CBraidLinux

#if canImport(Glibc)
import Glibc
#endif

/// Socket creation and addressing for the data plane. Every socket is non-blocking and
/// close-on-exec; every failure names the call and the address.
public enum Sockets {
    /// A `sockaddr_storage` for `endpoint`, and its length.
    static func storage(for endpoint: Endpoint) -> (sockaddr_storage, socklen_t) {
        var ss = sockaddr_storage()
        switch endpoint.address {
        case .v4(let v):
            withUnsafeMutableBytes(of: &ss) { raw in
                let sin = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self)
                sin.pointee.sin_family = sa_family_t(AF_INET)
                sin.pointee.sin_port = endpoint.port.bigEndian
                sin.pointee.sin_addr.s_addr = v.bigEndian
            }
            return (ss, socklen_t(MemoryLayout<sockaddr_in>.size))
        case .v6(let bytes):
            withUnsafeMutableBytes(of: &ss) { raw in
                let sin6 = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self)
                sin6.pointee.sin6_family = sa_family_t(AF_INET6)
                sin6.pointee.sin6_port = endpoint.port.bigEndian
                withUnsafeMutableBytes(of: &sin6.pointee.sin6_addr) { $0.copyBytes(from: bytes) }
            }
            return (ss, socklen_t(MemoryLayout<sockaddr_in6>.size))
        }
    }

    /// The endpoint in a `sockaddr_storage`; IPv4-mapped IPv6 addresses come back as IPv4.
    static func endpoint(_ ss: sockaddr_storage) -> Endpoint? {
        var ss = ss
        return withUnsafeBytes(of: &ss) { raw -> Endpoint? in
            switch Int32(raw.load(as: sockaddr.self).sa_family) {
            case AF_INET:
                let sin = raw.load(as: sockaddr_in.self)
                return Endpoint(address: .v4(UInt32(bigEndian: sin.sin_addr.s_addr)), port: UInt16(bigEndian: sin.sin_port))
            case AF_INET6:
                let sin6 = raw.load(as: sockaddr_in6.self)
                let bytes = withUnsafeBytes(of: sin6.sin6_addr) { Array($0) }
                guard let address = IPAddress(mappedIPv6Bytes: bytes) else { return nil }
                return Endpoint(address: address, port: UInt16(bigEndian: sin6.sin6_port))
            default:
                return nil
            }
        }
    }

    /// The local address of a socket: for a TPROXY-accepted connection, the LAN client's original
    /// destination.
    static func localEndpoint(_ fd: Int32) -> Endpoint? {
        var ss = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &ss) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return rc == 0 ? endpoint(ss) : nil
    }

    static func remoteEndpoint(_ fd: Int32) -> Endpoint? {
        var ss = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &ss) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &len) }
        }
        return rc == 0 ? endpoint(ss) : nil
    }

    static func setInt(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32, _ what: String) throws {
        var v = value
        try syscall("setsockopt(\(what))") { setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) }
    }

    /// Sets the socket's congestion control (TCP_CONGESTION) to the kernel algorithm `name`. On an
    /// MPTCP socket the kernel applies it to every subflow, those joined later included; on a
    /// listener, to the connections it accepts.
    static func setCongestionControl(_ fd: Int32, _ name: String) throws {
        var bytes = Array(name.utf8)
        try syscall("setsockopt(TCP_CONGESTION \(name))") {
            setsockopt(fd, braid_SOL_TCP, TCP_CONGESTION, &bytes, socklen_t(bytes.count))
        }
    }

    /// Whether this process may give its sockets the congestion control `name`: throws what the
    /// kernel said (ENOENT: no such algorithm; EPERM: not in tcp_allowed_congestion_control and
    /// no CAP_NET_ADMIN), tried on a socket of its own.
    public static func checkCongestionControl(_ name: String) throws {
        let fd = try stream(family: AF_INET, mptcp: false)
        defer { Glibc.close(fd) }
        try setCongestionControl(fd, name)
    }

    /// The outcome of a non-blocking connect once its socket reports an event: nil while it is
    /// still in progress, 0 when connected, else the errno it failed with.
    static func pendingConnectError(_ fd: Int32) -> Int32? {
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 { return errno }
        return err == EINPROGRESS || err == EALREADY ? nil : err
    }

    /// Bytes written to `fd` that its peer has not acknowledged yet (SIOCOUTQ; TCP, and MPTCP
    /// since Linux 6.4); nil when the socket cannot say.
    static func unacknowledgedBytes(_ fd: Int32) -> Int? {
        var n: Int32 = 0
        return ioctl(fd, UInt(TIOCOUTQ), &n) == 0 ? Int(n) : nil
    }

    /// A new non-blocking stream socket for `family`, TCP or MPTCP.
    static func stream(family: Int32, mptcp: Bool) throws -> Int32 {
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        let proto = mptcp ? braid_IPPROTO_MPTCP : Int32(IPPROTO_TCP)
        return try syscall(mptcp ? "socket(MPTCP)" : "socket(TCP)") { socket(family, type, proto) }
    }

    /// A listening socket. `configure` sets options between socket() and bind().
    static func listener(
        on endpoint: Endpoint, mptcp: Bool, backlog: Int32, configure: (Int32) throws -> Void
    ) throws -> Int32 {
        let family = endpoint.address.isIPv4 ? AF_INET : AF_INET6
        let fd = try stream(family: family, mptcp: mptcp)
        do {
            try setInt(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR")
            try configure(fd)
            try bind(fd, to: endpoint)
            try syscall("listen(\(endpoint))") { listen(fd, backlog) }
        } catch {
            Glibc.close(fd)
            throw error
        }
        return fd
    }

    /// Binds `fd` to a local endpoint.
    static func bind(_ fd: Int32, to endpoint: Endpoint) throws {
        var (ss, len) = storage(for: endpoint)
        let rc = withUnsafePointer(to: &ss) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in Glibc.bind(fd, sa, len) }
        }
        if rc < 0 { throw SystemError("bind(\(endpoint))", errno: errno) }
    }

    /// Starts a non-blocking connect. Returns true when already connected (a Fast Open socket
    /// connects at its first write), false when in progress; throws on an immediate failure.
    static func connect(_ fd: Int32, to endpoint: Endpoint) throws -> Bool {
        var (ss, len) = storage(for: endpoint)
        let rc = withUnsafePointer(to: &ss) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in Glibc.connect(fd, sa, len) }
        }
        if rc == 0 { return true }
        if errno == EINPROGRESS || errno == EINTR { return false }
        throw SystemError("connect(\(endpoint))", errno: errno)
    }

    /// Closes `fd` with a reset (SO_LINGER 0) rather than a FIN: how an abort on one side of a
    /// relay is shown to the other.
    static func closeWithReset(_ fd: Int32) {
        _ = braid_set_linger_reset(fd)
        Glibc.close(fd)
    }
}
