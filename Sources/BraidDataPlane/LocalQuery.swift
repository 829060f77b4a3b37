import BraidCore
import CBraidLinux

#if canImport(Glibc)
import Glibc
#endif

/// A Unix stream socket where local tools ask a running daemon one question per connection
/// (`braid status`): the client writes one line, the daemon answers and closes. Root-only by
/// file mode; the answer is computed on the daemon's control reactor.
public final class LocalQueryServer {
    private let reactor: Reactor
    private let path: String
    private let fd: Int32
    private let answer: (String) -> String

    public init(reactor: Reactor, path: String, answer: @escaping (String) -> String) throws {
        self.reactor = reactor
        self.path = path
        self.answer = answer
        let dir = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        if !dir.isEmpty { _ = mkdir(dir, 0o755) }
        unlink(path)  // a stale socket of a previous run
        fd = try syscall("socket(AF_UNIX)") {
            socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        do {
            var addr = try Self.address(path)
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            if rc < 0 { throw SystemError("bind(\(path))", errno: errno) }
            chmod(path, 0o600)
            try syscall("listen(\(path))") { listen(fd, 16) }
            try reactor.register(fd, events: braid_EPOLLIN, handler: ReactorCallback { [weak self] _, _ in self?.accept() })
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    static func address(_ path: String) throws -> sockaddr_un {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            throw SystemError("socket path too long (\(path))", errno: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: bytes) }
        return addr
    }

    private func accept() {
        while true {
            let conn = braid_accept(fd, nil, nil)
            if conn < 0 { return }
            QueryConnection(reactor: reactor, fd: conn, answer: answer).start()
        }
    }

    public func close() {
        reactor.close(fd)
        unlink(path)
    }

    /// Asks the daemon at `path`; throws when nothing answers within `timeoutSeconds`.
    public static func ask(path: String, question: String, timeoutSeconds: Int = 5) throws -> String {
        let fd = try syscall("socket(AF_UNIX)") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        defer { Glibc.close(fd) }
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = try address(path)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if rc < 0 { throw SystemError("connect(\(path)): is the daemon running?", errno: errno) }
        let q = Array((question + "\n").utf8)
        _ = q.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("read(\(path))", errno: errno)
            }
            if n == 0 { break }
            out += buffer[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// One question on the status socket, answered without blocking the reactor (which also runs the
/// gateway's probes): the client has 1 s to send its line; the answer goes out as fast as the client
/// reads it, within 5 s, then the connection closes. A concentrator's answer for thousands of
/// subscribers is larger than the socket's buffer, so what does not fit waits for EPOLLOUT instead
/// of being dropped.
final class QueryConnection: ReactorHandler {
    private let reactor: Reactor
    private let fd: Int32
    private let answer: (String) -> String
    private var open = true
    /// The answer, once the question was read, and how much of it is sent.
    private var reply: [UInt8]?
    private var sent = 0

    init(reactor: Reactor, fd: Int32, answer: @escaping (String) -> String) {
        self.reactor = reactor
        self.fd = fd
        self.answer = answer
    }

    func start() {
        do {
            try reactor.register(fd, events: braid_EPOLLIN, handler: self)
        } catch {
            Glibc.close(fd)
            return
        }
        reactor.schedule(afterNanos: 1_000_000_000) { [weak self] in
            if self?.reply == nil { self?.finish() }
        }
    }

    func ready(fd: Int32, events: UInt32) {
        guard reply == nil else { return send() }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = recv(fd, &buffer, buffer.count, 0)
        if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
        guard n > 0 else { return finish() }
        let question = String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: "\r\n ")
        reply = Array((answer(question) + "\n").utf8)
        send()
        guard open else { return }
        // The rest when the client has read some: writable, not readable, from now on.
        do {
            try reactor.take(fd, events: braid_EPOLLOUT, handler: self)
        } catch {
            return finish()
        }
        reactor.schedule(afterNanos: 5_000_000_000) { [weak self] in self?.finish() }
    }

    /// Sends what the socket takes; closes once all is sent or the client is gone.
    private func send() {
        guard let reply else { return }
        while sent < reply.count {
            let w = reply.withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress! + sent, reply.count - sent, Int32(MSG_NOSIGNAL))
            }
            if w < 0 && errno == EINTR { continue }
            if w < 0 && errno == EAGAIN { return }
            if w <= 0 { break }
            sent += w
        }
        finish()
    }

    private func finish() {
        guard open else { return }
        open = false
        reactor.close(fd)
    }
}

extension String {
    /// By Unicode scalars: as Characters, "\r\n" is one grapheme and would not match a lone "\n".
    func trimmingCharacters(in set: String) -> String {
        let trimmed = Set(set.unicodeScalars)
        let scalars = Array(unicodeScalars)
        var lo = 0
        var hi = scalars.count
        while lo < hi, trimmed.contains(scalars[lo]) { lo += 1 }
        while hi > lo, trimmed.contains(scalars[hi - 1]) { hi -= 1 }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: scalars[lo..<hi])
        return String(out)
    }
}
