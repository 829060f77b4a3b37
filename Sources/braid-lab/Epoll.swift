import Glibc

/// The few Linux entry points that Glibc's Swift module does not export: its module map leaves out
/// sys/epoll.h and sys/signalfd.h, and accept4 is behind _GNU_SOURCE. CBraidLinux belongs to the
/// daemon (and is being reworked separately), so they are resolved from the already-loaded libc by
/// name, once, and called with the C calling convention — the same ABI a C shim would give.
private enum LinuxSymbols {
    typealias EpollCreate1 = @convention(c) (Int32) -> Int32
    typealias EpollCtl = @convention(c) (Int32, Int32, Int32, UnsafeMutableRawPointer?) -> Int32
    typealias EpollWait = @convention(c) (Int32, UnsafeMutableRawPointer?, Int32, Int32) -> Int32
    typealias Signalfd = @convention(c) (Int32, UnsafePointer<sigset_t>?, Int32) -> Int32
    typealias Accept4 = @convention(c) (
        Int32, UnsafeMutablePointer<sockaddr>?, UnsafeMutablePointer<socklen_t>?, Int32
    ) -> Int32

    static let epollCreate1: EpollCreate1 = resolve("epoll_create1")
    static let epollCtl: EpollCtl = resolve("epoll_ctl")
    static let epollWait: EpollWait = resolve("epoll_wait")
    static let signalfd: Signalfd = resolve("signalfd")
    static let accept4: Accept4 = resolve("accept4")

    private static func resolve<Function>(_ name: String) -> Function {
        // dlsym(RTLD_DEFAULT, ...): RTLD_DEFAULT is the null handle in glibc.
        guard let address = dlsym(nil, name) else {
            fatalError("libc has no \(name): braid-lab needs Linux with glibc")
        }
        return unsafeBitCast(address, to: Function.self)
    }
}

/// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC: one call instead of accept + fcntl, which matters at
/// tens of thousands of connections per second. Returns nil when the backlog is empty.
func acceptNonblocking(_ listener: Int32, peer: inout SocketAddress) throws -> Int32? {
    var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    let flags = Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
    let fd = try withUnsafeMutablePointer(to: &peer.storage) { storage in
        try storage.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
            try sysNonblocking("accept4") { LinuxSymbols.accept4(listener, address, &length, flags) }
        }
    }
    peer.length = length
    return fd
}

/// Interest and readiness bits of epoll(7).
struct EpollEvents: OptionSet {
    let rawValue: UInt32

    static let input = EpollEvents(rawValue: 0x001)
    static let output = EpollEvents(rawValue: 0x004)
    static let error = EpollEvents(rawValue: 0x008)
    static let hangup = EpollEvents(rawValue: 0x010)
    /// Wake only one of the epoll instances waiting on a shared listener (no thundering herd).
    static let exclusive = EpollEvents(rawValue: 1 << 28)
}

/// One epoll instance, level-triggered. Each registration carries a 64-bit token handed back with
/// its readiness; callers use the descriptor or a slot index.
final class Epoll {
    let fd: Int32
    private let capacity: Int
    private let events: UnsafeMutableRawPointer

    // struct epoll_event is packed on x86-64 (12 bytes, data at offset 4) and naturally aligned
    // elsewhere (16 bytes, data at 8). Swift cannot see the header, so the layout is spelled out.
    #if arch(x86_64)
    private static let stride = 12
    private static let dataOffset = 4
    #else
    private static let stride = 16
    private static let dataOffset = 8
    #endif

    init(capacity: Int = 512) throws {
        fd = try sys("epoll_create1") { LinuxSymbols.epollCreate1(Int32(EPOLL_CLOEXEC_FLAG)) }
        self.capacity = capacity
        events = UnsafeMutableRawPointer.allocate(byteCount: capacity * Self.stride, alignment: 8)
    }

    deinit {
        events.deallocate()
        close(fd)
    }

    func add(_ target: Int32, _ interest: EpollEvents, token: UInt64) throws {
        try control(1, target, interest, token, "epoll_ctl ADD fd \(target)")
    }

    func modify(_ target: Int32, _ interest: EpollEvents, token: UInt64) throws {
        try control(3, target, interest, token, "epoll_ctl MOD fd \(target)")
    }

    func remove(_ target: Int32) throws {
        try control(2, target, [], 0, "epoll_ctl DEL fd \(target)")
    }

    /// Waits at most `timeoutMs` and calls `body` for each ready registration. A signal interrupting
    /// the wait counts as a timeout, so callers re-check their deadlines and stop flags.
    func wait(timeoutMs: Int32, _ body: (EpollEvents, UInt64) throws -> Void) throws {
        let count = LinuxSymbols.epollWait(fd, events, Int32(capacity), timeoutMs)
        if count < 0 {
            let code = errno
            if code == EINTR { return }
            throw SystemError(call: "epoll_wait", code: code)
        }
        for index in 0..<Int(count) {
            let entry = events + index * Self.stride
            let ready = EpollEvents(rawValue: entry.loadUnaligned(as: UInt32.self))
            let token = entry.loadUnaligned(fromByteOffset: Self.dataOffset, as: UInt64.self)
            try body(ready, token)
        }
    }

    private func control(_ op: Int32, _ target: Int32, _ interest: EpollEvents, _ token: UInt64,
                         _ call: @autoclosure () -> String) throws {
        var entry = (UInt64(0), UInt64(0))
        try withUnsafeMutableBytes(of: &entry) { raw in
            raw.storeBytes(of: interest.rawValue, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: token, toByteOffset: Self.dataOffset, as: UInt64.self)
            try sys(call()) { LinuxSymbols.epollCtl(fd, op, target, raw.baseAddress) }
        }
    }
}

private let EPOLL_CLOEXEC_FLAG = 0o2000000
private let SFD_NONBLOCK_FLAG: Int32 = 0o4000
private let SFD_CLOEXEC_FLAG: Int32 = 0o2000000

/// SIGTERM and SIGINT as a readable descriptor (signalfd), so every loop that polls or waits on epoll
/// also notices a stop request without a signal handler. The signals are blocked in the creating
/// thread; create this before starting threads so they all inherit the mask.
final class TerminationSignals {
    let fd: Int32

    init() throws {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        let rc = pthread_sigmask(SIG_BLOCK, &set, nil)
        if rc != 0 { throw SystemError(call: "pthread_sigmask", code: rc) }
        fd = try sys("signalfd") { LinuxSymbols.signalfd(-1, &set, SFD_NONBLOCK_FLAG | SFD_CLOEXEC_FLAG) }
    }

    deinit { close(fd) }

    /// True if a termination signal has arrived (and consumes it).
    func received() -> Bool {
        var info = [UInt8](repeating: 0, count: 128)  // sizeof(struct signalfd_siginfo)
        return info.withUnsafeMutableBytes { read(fd, $0.baseAddress, 128) } > 0
    }

    /// Waits up to `seconds` for SIGTERM or SIGINT; true if one came.
    func wait(seconds: Double) -> Bool {
        let deadline = MonotonicClock.nanoseconds() &+ UInt64(max(0, seconds) * 1e9)
        while true {
            if received() { return true }
            let now = MonotonicClock.nanoseconds()
            if now >= deadline { return false }
            // Bounded slices: a poll never outlives the deadline by more than a millisecond.
            let slice = Int32(min(1000, (deadline - now + 999_999) / 1_000_000))
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&entry, 1, slice)
        }
    }
}
