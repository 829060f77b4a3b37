import BraidCore
import CBraidLinux
import Glibc

/// An IPv4 or IPv6 address and port, parsed from numeric text (no name resolution: lab addresses are
/// literals, and a typo should fail loudly rather than resolve somewhere).
struct SocketAddress: CustomStringConvertible {
    var storage = sockaddr_storage()
    var length = socklen_t(0)

    /// An empty address for accept() to fill.
    init() {}

    init(host: String, port: Int) throws {
        if host.contains(":") {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET6, host, &address.sin6_addr) == 1 else {
                throw LabError("invalid IPv6 address '\(host)'")
            }
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: address, as: sockaddr_in6.self) }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
                throw LabError("invalid IPv4 address '\(host)' (expected a numeric IPv4 or IPv6 address)")
            }
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: address, as: sockaddr_in.self) }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        }
    }

    var family: Int32 { Int32(storage.ss_family) }

    var isUnspecifiedIPv6: Bool {
        guard family == AF_INET6 else { return false }
        return withUnsafeBytes(of: storage) { raw in
            let address = raw.load(as: sockaddr_in6.self).sin6_addr
            return withUnsafeBytes(of: address) { $0.allSatisfy { $0 == 0 } }
        }
    }

    /// The address without the port, as inet_ntop writes it (what braid-traffic.py logs as "peer").
    var host: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        withUnsafeBytes(of: storage) { raw in
            if family == AF_INET6 {
                var address = raw.load(as: sockaddr_in6.self).sin6_addr
                _ = inet_ntop(AF_INET6, &address, &text, socklen_t(text.count))
            } else {
                var address = raw.load(as: sockaddr_in.self).sin_addr
                _ = inet_ntop(AF_INET, &address, &text, socklen_t(text.count))
            }
        }
        return String(cString: text)
    }

    var port: Int {
        withUnsafeBytes(of: storage) { raw in
            family == AF_INET6
                ? Int(UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port))
                : Int(UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port))
        }
    }

    var description: String { family == AF_INET6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    func withSockaddr<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> Result) rethrows -> Result {
        try withUnsafeBytes(of: storage) { raw in
            try body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), length)
        }
    }
}

/// Socket system calls, each retrying EINTR and throwing an error that names the call and its target.
enum Sockets {
    /// A nonblocking, close-on-exec stream socket; IPPROTO_MPTCP when asked (the kernel then falls
    /// back to TCP per connection if the peer does not speak MPTCP).
    static func stream(family: Int32, mptcp: Bool) throws -> Int32 {
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        let proto = mptcp ? braid_IPPROTO_MPTCP : 0
        return try syscall("socket(\(family == AF_INET6 ? "AF_INET6" : "AF_INET")\(mptcp ? ", IPPROTO_MPTCP" : ""))") {
            socket(family, type, proto)
        }
    }

    static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32, _ label: String) throws {
        var value = value
        try syscall("setsockopt \(label)") {
            setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    static func bind(_ fd: Int32, to address: SocketAddress) throws {
        _ = try address.withSockaddr { pointer, length in
            try syscall("bind \(address)") { Glibc.bind(fd, pointer, length) }
        }
    }

    /// A listening socket for `address`. "::" also accepts IPv4 (IPV6_V6ONLY off), like the Python
    /// origin server.
    static func listener(on address: SocketAddress, mptcp: Bool, backlog: Int32 = 4096) throws -> Int32 {
        let fd = try stream(family: address.family, mptcp: mptcp)
        do {
            try setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR")
            if address.isUnspecifiedIPv6 {
                try setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 0, "IPV6_V6ONLY")
            }
            try bind(fd, to: address)
            try syscall("listen \(address)") { Glibc.listen(fd, backlog) }
            return fd
        } catch {
            close(fd)
            throw error
        }
    }

    /// Starts a nonblocking connect. True if it completed at once, false if it is in progress
    /// (completion is signalled by writability, then `pendingError`).
    static func startConnect(_ fd: Int32, to address: SocketAddress) throws -> Bool {
        try address.withSockaddr { pointer, length in
            while true {
                if Glibc.connect(fd, pointer, length) == 0 { return true }
                let code = errno
                if code == EINTR { continue }
                if code == EINPROGRESS { return false }
                throw SystemError("connect \(address)", errno: code)
            }
        }
    }

    /// SO_ERROR: the outcome of a nonblocking connect, 0 when it succeeded.
    static func pendingError(_ fd: Int32) throws -> Int32 {
        var code: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        try syscall("getsockopt SO_ERROR") { getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length) }
        return code
    }

    /// Opens a connection and waits at most `timeout` seconds for the handshake. The returned
    /// descriptor is nonblocking; the caller owns it.
    static func dial(_ address: SocketAddress, mptcp: Bool, bind local: SocketAddress? = nil,
                     timeout: Double) throws -> Int32 {
        let fd = try stream(family: address.family, mptcp: mptcp)
        do {
            if let local { try bind(fd, to: local) }
            if try !startConnect(fd, to: address) {
                guard try waitUntil(fd, Int16(POLLOUT), timeout: timeout) else {
                    throw LabError("connect \(address): no answer within \(timeout) s")
                }
                let code = try pendingError(fd)
                if code != 0 { throw SystemError("connect \(address)", errno: code) }
            }
            return fd
        } catch {
            close(fd)
            throw error
        }
    }

    /// poll(2) on one descriptor: true when ready (or in error, which the next call reports), false
    /// after `timeout` seconds.
    static func waitUntil(_ fd: Int32, _ events: Int16, timeout: Double) throws -> Bool {
        let deadline = monotonicNanos() &+ UInt64(max(0, timeout) * 1e9)
        while true {
            let now = monotonicNanos()
            if now >= deadline { return false }
            var entry = pollfd(fd: fd, events: events, revents: 0)
            let slice = Int32(min(UInt64(Int32.max), (deadline - now + 999_999) / 1_000_000))
            if try syscall("poll fd \(fd)", { poll(&entry, 1, slice) }) > 0 { return true }
        }
    }

    static func receive(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) throws -> Int? {
        try sysNonblocking("recv") { recv(fd, buffer.baseAddress, buffer.count, 0) }
    }

    static func send(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) throws -> Int? {
        try sysNonblocking("send") { Glibc.send(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL)) }
    }

    static func shutdownWrite(_ fd: Int32) throws {
        try syscall("shutdown SHUT_WR") { shutdown(fd, Int32(SHUT_WR)) }
    }
}

/// A connected nonblocking socket used in blocking style by the one-connection clients: every wait
/// is a poll bounded by an idle timeout, like a Python socket with settimeout().
struct TimedSocket {
    let fd: Int32
    let timeout: Double

    /// Reads what is available, waiting up to the timeout for something; 0 means EOF.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            if let n = try Sockets.receive(fd, buffer) { return n }
            guard try Sockets.waitUntil(fd, Int16(POLLIN), timeout: timeout) else {
                throw LabError("recv: nothing for \(timeout) s (timeout)")
            }
        }
    }

    func writeAll(_ buffer: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < buffer.count {
            let rest = UnsafeRawBufferPointer(rebasing: buffer[offset...])
            if let n = try Sockets.send(fd, rest) {
                offset += n
            } else if try !Sockets.waitUntil(fd, Int16(POLLOUT), timeout: timeout) {
                throw LabError("send: peer took nothing for \(timeout) s (timeout)")
            }
        }
    }

    func writeAll(_ text: String) throws {
        var text = text
        try text.withUTF8 { try writeAll(UnsafeRawBufferPointer($0)) }
    }
}
