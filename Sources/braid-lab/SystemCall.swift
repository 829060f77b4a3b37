import BraidCore
import Glibc

/// A failure that is not a system call: a bad value, a timeout, a protocol violation.
struct LabError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) { self.description = description }
}

/// Like `syscall` (BraidCore), for nonblocking descriptors: returns nil when the call would block
/// (EAGAIN), which is the normal outcome of draining a socket and not worth an error.
@inline(__always)
func sysNonblocking<T: FixedWidthInteger>(_ call: @autoclosure () -> String, _ body: () -> T) throws -> T? {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = errno
        if code == EINTR { continue }
        if code == EAGAIN || code == EWOULDBLOCK { return nil }
        throw SystemError(call(), errno: code)
    }
}

/// Intervals between two `monotonicNanos()` readings (BraidCore): every interval this tool reports
/// or waits for is measured on CLOCK_MONOTONIC.
enum MonotonicClock {
    static func milliseconds(from start: UInt64, to end: UInt64) -> Double {
        Double(end &- start) / 1e6
    }

    static func seconds(from start: UInt64, to end: UInt64) -> Double {
        Double(end &- start) / 1e9
    }
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
