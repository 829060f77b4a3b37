import BraidCore
import CBraidLinux
import Glibc

/// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC (CBraidLinux's braid_accept; Glibc's Swift module
/// hides accept4 behind _GNU_SOURCE): one call instead of accept + fcntl, which matters at tens of
/// thousands of connections per second. Returns nil when the backlog is empty.
func acceptNonblocking(_ listener: Int32, peer: inout SocketAddress) throws -> Int32? {
    var length = UInt32(MemoryLayout<sockaddr_storage>.size)
    let fd = try withUnsafeMutableBytes(of: &peer.storage) { storage in
        try sysNonblocking("accept4") { braid_accept(listener, storage.baseAddress, &length) }
    }
    peer.length = socklen_t(length)
    return fd
}

/// Interest and readiness bits of epoll(7). CBraidLinux exports them as plain integers because Swift
/// imports the C enum as a type whose members do not combine.
struct EpollEvents: OptionSet {
    let rawValue: UInt32

    static let input = EpollEvents(rawValue: braid_EPOLLIN)
    static let output = EpollEvents(rawValue: braid_EPOLLOUT)
    static let error = EpollEvents(rawValue: braid_EPOLLERR)
    static let hangup = EpollEvents(rawValue: braid_EPOLLHUP)
    /// Wake only one of the epoll instances waiting on a shared listener (no thundering herd).
    static let exclusive = EpollEvents(rawValue: braid_EPOLLEXCLUSIVE)
}

/// One epoll instance, level-triggered. Each registration carries a 64-bit token handed back with
/// its readiness; callers use the descriptor or a slot index.
final class Epoll {
    let fd: Int32
    private var events: [epoll_event]

    init(capacity: Int = 512) throws {
        fd = try syscall("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }
        events = Array(repeating: epoll_event(), count: max(1, capacity))
    }

    deinit { close(fd) }

    func add(_ target: Int32, _ interest: EpollEvents, token: UInt64) throws {
        try control(EPOLL_CTL_ADD, target, interest, token, "epoll_ctl ADD fd \(target)")
    }

    func modify(_ target: Int32, _ interest: EpollEvents, token: UInt64) throws {
        try control(EPOLL_CTL_MOD, target, interest, token, "epoll_ctl MOD fd \(target)")
    }

    func remove(_ target: Int32) throws {
        try control(EPOLL_CTL_DEL, target, [], 0, "epoll_ctl DEL fd \(target)")
    }

    /// Waits at most `timeoutMs` and calls `body` for each ready registration. A signal interrupting
    /// the wait counts as a timeout, so callers re-check their deadlines and stop flags.
    func wait(timeoutMs: Int32, _ body: (EpollEvents, UInt64) throws -> Void) throws {
        let capacity = Int32(events.count)
        let count = events.withUnsafeMutableBufferPointer { epoll_wait(fd, $0.baseAddress, capacity, timeoutMs) }
        if count < 0 {
            let code = errno
            if code == EINTR { return }
            throw SystemError("epoll_wait", errno: code)
        }
        for index in 0..<Int(count) {
            try body(EpollEvents(rawValue: events[index].events), events[index].data.u64)
        }
    }

    private func control(_ op: Int32, _ target: Int32, _ interest: EpollEvents, _ token: UInt64,
                         _ call: @autoclosure () -> String) throws {
        var entry = epoll_event()
        entry.events = interest.rawValue
        entry.data.u64 = token
        try syscall(call()) { epoll_ctl(fd, op, target, &entry) }
    }
}

/// The eventfd that the SIGTERM/SIGINT handler writes to. A signal handler can only reach globals;
/// it is set once, before the handler is installed, and never changed.
nonisolated(unsafe) private var terminationEventFD: Int32 = -1

/// SIGTERM and SIGINT as a readable descriptor (the self-pipe trick, with an eventfd), so every
/// loop that polls or waits on epoll also notices a stop request. The handler only write(2)s, which
/// is async-signal-safe; the signal also interrupts whatever wait is in progress (EINTR).
final class TerminationSignals {
    let fd: Int32

    init() throws {
        fd = try syscall("eventfd") { eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)) }
        terminationEventFD = fd
        let handler: @convention(c) (Int32) -> Void = { _ in
            var one: UInt64 = 1
            _ = write(terminationEventFD, &one, 8)
        }
        signal(SIGTERM, handler)
        signal(SIGINT, handler)
    }

    /// True if a termination signal has arrived (and consumes it).
    func received() -> Bool {
        var count: UInt64 = 0
        return read(fd, &count, 8) == 8
    }

    /// Waits up to `seconds` for SIGTERM or SIGINT; true if one came.
    func wait(seconds: Double) -> Bool {
        let deadline = monotonicNanos() &+ UInt64(max(0, seconds) * 1e9)
        while true {
            if received() { return true }
            let now = monotonicNanos()
            if now >= deadline { return false }
            // Bounded slices: a poll never outlives the deadline by more than a millisecond.
            let slice = Int32(min(1000, (deadline - now + 999_999) / 1_000_000))
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&entry, 1, slice)
        }
    }
}
