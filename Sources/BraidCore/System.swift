#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: which call, on what, and errno. The project's one error type for kernel
/// failures (sockets, netlink, epoll, threads), so a log line always names the call that failed.
public struct SystemError: Error, CustomStringConvertible {
    public var call: String
    public var errno: Int32

    public init(_ call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    public var description: String { "\(call): \(String(cString: strerror(errno))) (errno \(errno))" }
}

/// Runs a system call, retrying on EINTR; returns its result or throws `SystemError` naming `call`.
/// `call` is an autoclosure so the message is only built when something failed.
@inline(__always)
@discardableResult
public func syscall<T: FixedWidthInteger>(_ call: @autoclosure () -> String, _ body: () -> T) throws -> T {
    while true {
        let r = body()
        if r >= 0 { return r }
        let e = Glibc.errno
        if e == EINTR { continue }
        throw SystemError(call(), errno: e)
    }
}

/// CLOCK_MONOTONIC in nanoseconds, for timers and intervals: wall-clock steps never show up as
/// latency or expire a timer early.
public func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// Wall-clock milliseconds: the authentication timestamp is compared across hosts.
public func wallClockMillis() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
}

/// The first line of a small kernel file (/proc/sys, /sys), without its newline; nil when it
/// cannot be read.
public func readFirstLine(_ path: String) -> String? {
    guard let f = fopen(path, "r") else { return nil }
    defer { fclose(f) }
    var buf = [CChar](repeating: 0, count: 256)
    guard fgets(&buf, Int32(buf.count), f) != nil else { return nil }
    var line = String(cString: buf)
    while line.last == "\n" { line.removeLast() }
    return line
}

/// Raises RLIMIT_NOFILE as far as allowed: every relayed session holds two sockets, and a
/// default soft limit of 1024 would cap a gateway at about 500 sessions. With CAP_SYS_RESOURCE
/// the hard limit goes up to the kernel's fs.nr_open; without it, the soft limit goes up to the
/// hard one.
@discardableResult
public func raiseFileLimit() -> (old: UInt64, new: UInt64) {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return (0, 0) }
    let old = UInt64(limit.rlim_cur)
    if let text = readFirstLine("/proc/sys/fs/nr_open"),
        let nrOpen = rlim_t(text.filter { !$0.isWhitespace }), nrOpen > limit.rlim_max
    {
        var wanted = rlimit(rlim_cur: nrOpen, rlim_max: nrOpen)
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &wanted) == 0 { return (old, UInt64(nrOpen)) }
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
    return (old, UInt64(limit.rlim_cur))
}

/// Why a file holding a secret (a private key, the pre-shared key) must not be used, or nil when
/// only its owner may read and write it. Refused as ssh refuses a key: a secret that group or
/// others can read has to be taken for leaked, and one they can write for replaced.
public func secretFileProblem(_ path: String) -> String? {
    var st = stat()
    guard stat(path, &st) == 0 else { return nil }  // the read that follows names what is wrong
    let mode = st.st_mode & 0o7777
    guard mode & 0o077 != 0 else { return nil }
    return "permissions \(String(mode, radix: 8)) for \(path) are too open: a secret must be readable by its owner "
        + "only (chmod 600 \(path))"
}

/// Why a directory must not hold files braid trusts (staged uci changes, the kernel state file),
/// or nil when it is safe or does not exist: one that is a symbolic link, not a directory, owned
/// by another user, or writable by group or others could have been filled by someone else.
public func privateDirectoryProblem(_ path: String) -> String? {
    var st = stat()
    guard lstat(path, &st) == 0 else { return errno == ENOENT ? nil : String(cString: strerror(errno)) }
    switch st.st_mode & S_IFMT {
    case S_IFDIR: break
    case S_IFLNK: return "it is a symbolic link"
    default: return "it is not a directory"
    }
    guard st.st_uid == geteuid() else { return "it belongs to uid \(st.st_uid), not to uid \(geteuid())" }
    guard st.st_mode & 0o022 == 0 else {
        return "group or others may write to it (mode \(String(st.st_mode & 0o7777, radix: 8)))"
    }
    return nil
}
