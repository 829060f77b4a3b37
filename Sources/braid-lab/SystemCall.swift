import Glibc

/// A failed system call. The description names the call, what it acted on, and errno, because that is
/// what a person reading stderr needs to fix a lab ("connect 198.18.20.2:8080: Connection refused").
struct SystemError: Error, CustomStringConvertible {
    let call: String
    let code: Int32

    var description: String { "\(call): \(String(cString: strerror(code))) (errno \(code))" }
}

/// A failure that is not a system call: a bad value, a timeout, a protocol violation.
struct LabError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) { self.description = description }
}

/// Runs a system call that reports failure as -1 with errno set; retries on EINTR and throws anything else.
/// `call` is an autoclosure so the message is only built when something failed.
@discardableResult
@inline(__always)
func sys<T: FixedWidthInteger>(_ call: @autoclosure () -> String, _ body: () -> T) throws -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = errno
        if code == EINTR { continue }
        throw SystemError(call: call(), code: code)
    }
}

/// Like `sys`, for nonblocking descriptors: returns nil when the call would block (EAGAIN), which is
/// the normal outcome of draining a socket and not worth an error.
@inline(__always)
func sysNonblocking<T: FixedWidthInteger>(_ call: @autoclosure () -> String, _ body: () -> T) throws -> T? {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = errno
        if code == EINTR { continue }
        if code == EAGAIN || code == EWOULDBLOCK { return nil }
        throw SystemError(call: call(), code: code)
    }
}

/// CLOCK_MONOTONIC in nanoseconds: every interval this tool reports or waits for is measured on it,
/// so wall-clock steps (NTP, a lab host's clock being set) never show up as latency.
enum MonotonicClock {
    @inline(__always)
    static func nanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
    }

    static func milliseconds(from start: UInt64, to end: UInt64) -> Double {
        Double(end &- start) / 1e6
    }

    static func seconds(from start: UInt64, to end: UInt64) -> Double {
        Double(end &- start) / 1e9
    }
}

/// Raises RLIMIT_NOFILE as far as it goes: the hard limit to 1,048,576 when we may (root with
/// CAP_SYS_RESOURCE, and fs.nr_open allows it), else the soft limit to the existing hard limit.
/// Holding 20,000 connections needs 20,000 descriptors; the usual soft limit is 1,024.
@discardableResult
func raiseFileLimit() -> UInt64 {
    let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    var limit = rlimit()
    guard getrlimit(resource, &limit) == 0 else { return 0 }
    let wanted: rlim_t = 1_048_576
    if limit.rlim_max < wanted {
        var raised = rlimit(rlim_cur: wanted, rlim_max: wanted)
        if setrlimit(resource, &raised) == 0 { return UInt64(wanted) }
    }
    limit.rlim_cur = limit.rlim_max
    _ = setrlimit(resource, &limit)
    return UInt64(limit.rlim_cur)
}

/// Writes all of `text` to a descriptor (stdout, stderr, a log file) with one write(2) when it fits,
/// which keeps concurrent JSON lines from different threads whole in an O_APPEND file.
func writeAll(fd: Int32, _ text: String) {
    var text = text
    text.withUTF8 { bytes in
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            offset += n
        }
    }
}

/// Prints a line on stderr, for diagnostics that must not mix with the JSON on stdout.
func printError(_ message: String) {
    writeAll(fd: STDERR_FILENO, "braid-lab: \(message)\n")
}
