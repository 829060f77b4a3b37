import BraidCore
import CBraidLinux
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Owns one or more file descriptors registered with a reactor and is told when they are ready.
/// Registrations use edge triggering for connections (the handler works until EAGAIN) and level
/// triggering for listeners.
public protocol ReactorHandler: AnyObject {
    func ready(fd: Int32, events: UInt32)
}

/// One event loop on one thread: epoll, a timer heap, a queue for work from other threads, a pipe
/// pool and a scratch buffer. The data plane runs one reactor per core; a connection lives on the
/// reactor that accepted it for its whole life, so nothing in the hot path takes a lock.
public final class Reactor {
    /// Level-triggered readability, for control-plane descriptors registered from other modules.
    public static let readable: UInt32 = braid_EPOLLIN
    /// Readability reported once (EPOLLONESHOT): the descriptor is not watched again until `rearm`,
    /// for a reader that lets a burst gather before it reads.
    public static let readableOnce: UInt32 = braid_EPOLLIN | UInt32(EPOLLONESHOT.rawValue)

    public let index: Int
    let epfd: Int32
    let wakefd: Int32
    /// Handlers indexed by fd: the table owns the handler objects, so a handler lives exactly as
    /// long as one of its descriptors is registered.
    private var handlers: [ReactorHandler?] = []
    /// The epoll events each fd of `handlers` is registered with, so `take` can skip an
    /// epoll_ctl(MOD) that would change nothing.
    private var registeredEvents: [UInt32] = []
    private var timers = TimerHeap()
    private var running = true
    private let lock = Mutex()
    private var tasks: [() -> Void] = []
    let pipes: PipePool
    /// Scratch space for the few bytes read in user space (Convert messages) and for the copy
    /// fallback when a socket cannot splice. Shared by every connection of this reactor.
    let scratch: UnsafeMutableRawBufferPointer
    let logger: Logger

    init(index: Int, logger: Logger) throws {
        self.index = index
        self.logger = logger
        epfd = try syscall("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }
        wakefd = try syscall("eventfd") { eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)) }
        pipes = PipePool()
        scratch = .allocate(byteCount: 1 << 16, alignment: 16)
        var ev = epoll_event()
        ev.events = braid_EPOLLIN
        ev.data.fd = wakefd
        try syscall("epoll_ctl(ADD, eventfd)") { epoll_ctl(epfd, EPOLL_CTL_ADD, wakefd, &ev) }
    }

    deinit {
        pipes.drain()
        scratch.deallocate()
        close(wakefd)
        close(epfd)
    }

    // MARK: registrations (reactor thread only)

    private func control(_ op: Int32, _ name: String, _ fd: Int32, events: UInt32) throws {
        var ev = epoll_event()
        ev.events = events
        ev.data.fd = fd
        try syscall("epoll_ctl(\(name), \(fd))") { epoll_ctl(epfd, op, fd, &ev) }
    }

    /// Adds `fd` to this reactor with `events`, owned by `handler`.
    public func register(_ fd: Int32, events: UInt32, handler: ReactorHandler) throws {
        try control(EPOLL_CTL_ADD, "ADD", fd, events: events)
        setHandler(fd, handler)
        registeredEvents[Int(fd)] = events
    }

    /// Registers `fd`, or, when another handler has it already (a connection moving from its
    /// handshake to the relay), hands it to `handler` with `events`: without a system call when
    /// it is registered with those events already (the concentrator's handshake registers both
    /// sockets with the relay's events for this).
    func take(_ fd: Int32, events: UInt32, handler: ReactorHandler) throws {
        guard isRegistered(fd) else { return try register(fd, events: events, handler: handler) }
        if registeredEvents[Int(fd)] != events {
            try control(EPOLL_CTL_MOD, "MOD", fd, events: events)
            registeredEvents[Int(fd)] = events
        }
        setHandler(fd, handler)
    }

    /// Sets or clears the handler of a registered fd.
    public func setHandler(_ fd: Int32, _ handler: ReactorHandler?) {
        let i = Int(fd)
        if i >= handlers.count {
            guard handler != nil else { return }
            let more = max(i + 1 - handlers.count, handlers.count)
            handlers.append(contentsOf: repeatElement(nil, count: more))
            registeredEvents.append(contentsOf: repeatElement(0, count: more))
        }
        handlers[i] = handler
    }

    public func isRegistered(_ fd: Int32) -> Bool {
        Int(fd) < handlers.count && handlers[Int(fd)] != nil
    }

    /// Watches a registered `fd` again with `events` (after a one-shot registration fired).
    public func rearm(_ fd: Int32, events: UInt32) throws {
        try control(EPOLL_CTL_MOD, "MOD", fd, events: events)
        registeredEvents[Int(fd)] = events
    }

    /// Removes `fd` from epoll and the table, without closing it.
    public func deregister(_ fd: Int32) {
        try? control(EPOLL_CTL_DEL, "DEL", fd, events: 0)
        setHandler(fd, nil)
    }

    /// Drops `fd` from the table and closes it (closing removes it from epoll).
    public func close(_ fd: Int32) {
        setHandler(fd, nil)
        _ = Glibc.close(fd)
    }

    /// Runs `action` on this reactor after `nanos`. Timers are not cancelled: the action checks
    /// whether it still applies (captures its owner weakly), which keeps the hot path free of
    /// timer bookkeeping.
    public func schedule(afterNanos nanos: UInt64, _ action: @escaping () -> Void) {
        timers.push(deadline: monotonicNanos() &+ nanos, action)
    }

    private var copyFallbackLogged = false

    /// A relay found a socket that cannot splice (EINVAL) and copies instead; said once per
    /// reactor, since it costs throughput and points at a kernel without splice for that socket.
    func noteCopyFallback() {
        guard !copyFallbackLogged else { return }
        copyFallbackLogged = true
        logger.notice("splice(2) refused by a socket (EINVAL); relaying through user space for such sockets")
    }

    // MARK: cross-thread

    /// Runs `task` on the reactor thread. Safe from any thread.
    public func execute(_ task: @escaping () -> Void) {
        lock.withLock { tasks.append(task) }
        var one: UInt64 = 1
        _ = write(wakefd, &one, 8)
    }

    func stop() {
        execute { [self] in running = false }
    }

    // MARK: the loop

    func run() {
        scheduleTrim()
        let capacity = 256
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: capacity)
        defer { events.deallocate() }
        while running {
            let timeout = timers.millisUntilNext(now: monotonicNanos())
            let n = epoll_wait(epfd, events, Int32(capacity), timeout)
            if n < 0 {
                if errno == EINTR { continue }
                logger.critical("epoll_wait failed; reactor \(index) stops", metadata: ["error": "\(errno)"])
                return
            }
            for i in 0..<Int(n) {
                let fd = events[i].data.fd
                if fd == wakefd {
                    runTasks()
                    continue
                }
                let index = Int(fd)
                guard index < handlers.count, let handler = handlers[index] else { continue }
                handler.ready(fd: fd, events: events[i].events)
            }
            if !timers.isEmpty {
                // Taken out first: an action may schedule another timer.
                for action in timers.popDue(now: monotonicNanos()) { action() }
            }
        }
    }

    /// Trims the pipe pool every `PipePool.trimNanos`, for as long as the reactor runs.
    private func scheduleTrim() {
        schedule(afterNanos: PipePool.trimNanos) { [weak self] in
            guard let self else { return }
            self.pipes.trim()
            self.scheduleTrim()
        }
    }

    private func runTasks() {
        var counter: UInt64 = 0
        _ = read(wakefd, &counter, 8)
        let pending = lock.withLock { () -> [() -> Void] in
            let t = tasks
            tasks = []
            return t
        }
        for task in pending { task() }
    }
}

/// A min-heap of deadlines. Each reactor has one; only its thread touches it.
struct TimerHeap {
    private var items: [(deadline: UInt64, seq: UInt64, action: () -> Void)] = []
    private var seq: UInt64 = 0

    var isEmpty: Bool { items.isEmpty }

    mutating func push(deadline: UInt64, _ action: @escaping () -> Void) {
        seq &+= 1
        items.append((deadline, seq, action))
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard less(i, parent) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    /// epoll_wait's timeout: -1 without timers, else milliseconds rounded up.
    func millisUntilNext(now: UInt64) -> Int32 {
        guard let first = items.first else { return -1 }
        if first.deadline <= now { return 0 }
        return Int32(min((first.deadline - now + 999_999) / 1_000_000, 60_000))
    }

    mutating func popDue(now: UInt64) -> [() -> Void] {
        var due: [() -> Void] = []
        while let first = items.first, first.deadline <= now {
            due.append(popFirst())
        }
        return due
    }

    private func less(_ a: Int, _ b: Int) -> Bool {
        (items[a].deadline, items[a].seq) < (items[b].deadline, items[b].seq)
    }

    private mutating func popFirst() -> () -> Void {
        let action = items[0].action
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1
                let r = l + 1
                var m = i
                if l < items.count && less(l, m) { m = l }
                if r < items.count && less(r, m) { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return action
    }
}

/// A pthread mutex, for the few places threads meet (task queues, the replay cache).
public final class Mutex {
    private let m: UnsafeMutablePointer<pthread_mutex_t>

    public init() {
        m = .allocate(capacity: 1)
        pthread_mutex_init(m, nil)
    }

    deinit {
        pthread_mutex_destroy(m)
        m.deallocate()
    }

    @inline(__always)
    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(m)
        defer { pthread_mutex_unlock(m) }
        return try body()
    }
}

/// The data plane's threads: one reactor per core.
public final class ReactorGroup {
    public let reactors: [Reactor]
    private var threads: [pthread_t] = []

    /// `count` reactors; 0 means one per online CPU.
    public init(count: Int = 0, logger: Logger) throws {
        let n = count > 0 ? count : max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        reactors = try (0..<n).map { try Reactor(index: $0, logger: logger) }
    }

    /// Starts one thread per reactor.
    public func start() throws {
        for reactor in reactors {
            let box = Unmanaged.passRetained(reactor).toOpaque()
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { arg in
                let reactor = Unmanaged<Reactor>.fromOpaque(arg!).takeRetainedValue()
                reactor.run()
                return nil
            }, box)
            guard rc == 0 else {
                Unmanaged<Reactor>.fromOpaque(box).release()
                throw SystemError("pthread_create", errno: rc)
            }
            threads.append(thread)
        }
    }

    /// Stops every reactor and waits for its thread. Connections still open are closed with the
    /// process; braid does not drain sessions on stop (a restart of the gateway ends them anyway).
    public func stop() {
        for reactor in reactors { reactor.stop() }
        for thread in threads { pthread_join(thread, nil) }
        threads = []
    }
}

/// A handler made of a closure, for the control plane's few descriptors (netlink, probes, the
/// status socket), where a class per descriptor would add nothing.
public final class ReactorCallback: ReactorHandler {
    private let body: (Int32, UInt32) -> Void

    public init(_ body: @escaping (_ fd: Int32, _ events: UInt32) -> Void) {
        self.body = body
    }

    public func ready(fd: Int32, events: UInt32) {
        body(fd, events)
    }
}
