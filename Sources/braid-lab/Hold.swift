import ArgumentParser
import BraidCore
import Glibc

/// `braid-lab hold`: opens many idle connections and keeps them, to measure what idle connections
/// cost the gateway, the concentrator or the origin.
struct Hold: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Open N idle connections (nothing sent), report, then hold them for S seconds or until "
            + "SIGTERM/SIGINT.",
        discussion: """
            Prints one JSON line (result, open, failures, seconds) once every connection is established or \
            has failed, then holds those that opened; exits 0 after closing them (1 if none opened).
            """
    )

    @OptionGroup var target: TargetOptions

    @Option(help: "Connections to open.")
    var count: Int

    @Option(help: "Seconds to hold them open.")
    var seconds: Double = 3600

    @Option(help: "Connection attempts in flight at most.")
    var rate = 1000

    @Option(help: "Seconds a single connect may take before it counts as a failure.")
    var timeout: Double = 10

    func validate() throws {
        try validateAtLeast(count, 1, "--count")
        try validatePositive(seconds, "--seconds")
        try validateAtLeast(rate, 1, "--rate")
        try validatePositive(timeout, "--timeout")
    }

    func run() throws {
        let limit = raiseFileLimit().new
        // Besides one descriptor per connection: stdio, epoll and signalfd.
        if UInt64(count) + 8 > limit {
            printError("hold: --count \(count) needs more descriptors than the limit (\(limit)); some connects will fail")
        }
        let signals = try TerminationSignals()
        let address = try target.address()
        let start = monotonicNanos()
        let opener = try ConnectionOpener(
            address: address, mptcp: target.mptcp, count: count, inFlight: rate, timeoutNanos: UInt64(timeout * 1e9))
        let interrupted = try opener.run(stopping: signals)
        let elapsed = MonotonicClock.seconds(from: start, to: monotonicNanos())

        var result: JSONObject = [
            "result": .string(opener.open.count == count ? "ok" : "error"),
            "open": .int(opener.open.count),
            "failures": .int(opener.failures),
            "seconds": .rounded(elapsed),
        ]
        if let firstError = opener.firstError {
            result["error"] = .string("\(opener.failures) connects failed; first: \(firstError)")
        } else if interrupted {
            result["error"] = .string("interrupted before all connections were open")
        }
        result.emit()
        if opener.open.count < count { printError("hold: only \(opener.open.count) of \(count) connections open") }
        // Nothing to hold: waiting out --seconds would only make a broken setup look like a slow one.
        if opener.open.isEmpty { throw ExitCode.failure }

        if !interrupted { _ = signals.wait(seconds: seconds) }
        opener.open.forEach { close($0) }
    }
}

/// Opens `count` connections with at most `inFlight` handshakes pending, and keeps the
/// established ones (out of epoll: an idle held connection needs no attention).
final class ConnectionOpener {
    private let address: SocketAddress
    private let mptcp: Bool
    private let count: Int
    private let inFlight: Int
    private let timeoutNanos: UInt64
    private let epoll: Epoll
    /// Pending connects: descriptor → when the attempt started.
    private var pending: [Int32: UInt64] = [:]
    private var attempted = 0

    private(set) var open: [Int32] = []
    private(set) var failures = 0
    private(set) var firstError: String?

    init(address: SocketAddress, mptcp: Bool, count: Int, inFlight: Int, timeoutNanos: UInt64) throws {
        self.address = address
        self.mptcp = mptcp
        self.count = count
        self.inFlight = inFlight
        self.timeoutNanos = timeoutNanos
        epoll = try Epoll(capacity: min(inFlight, 4096))
        open.reserveCapacity(count)
    }

    /// Runs until every connection is open or failed; true if a termination signal cut it short.
    func run(stopping signals: TerminationSignals) throws -> Bool {
        try epoll.add(signals.fd, .input, token: UInt64.max)
        var interrupted = false
        while open.count + failures < count && !interrupted {
            startMore()
            try epoll.wait(timeoutMs: 100) { ready, token in
                if token == UInt64.max {
                    interrupted = signals.received()
                    return
                }
                settle(Int32(truncatingIfNeeded: token))
            }
            expireSlowConnects()
        }
        for fd in pending.keys { close(fd) }
        pending = [:]
        return interrupted
    }

    private func startMore() {
        while pending.count < inFlight && attempted < count {
            attempted += 1
            var descriptor: Int32 = -1
            do {
                let fd = try Sockets.stream(family: address.family, mptcp: mptcp)
                descriptor = fd
                if try Sockets.startConnect(fd, to: address) {
                    open.append(fd)
                } else {
                    try epoll.add(fd, .output, token: UInt64(fd))
                    pending[fd] = monotonicNanos()
                }
            } catch {
                if descriptor >= 0 { close(descriptor) }
                fail(error)
            }
        }
    }

    private func settle(_ fd: Int32) {
        guard pending.removeValue(forKey: fd) != nil else { return }
        do {
            let code = try Sockets.pendingError(fd)
            if code != 0 { throw SystemError("connect \(address)", errno: code) }
            try epoll.remove(fd)
            open.append(fd)
        } catch {
            close(fd)
            fail(error)
        }
    }

    private func expireSlowConnects() {
        let now = monotonicNanos()
        for (fd, started) in pending where now &- started > timeoutNanos {
            pending[fd] = nil
            close(fd)
            fail(LabError("connect \(address): no answer within \(Double(timeoutNanos) / 1e9) s"))
        }
    }

    private func fail(_ error: Error) {
        failures += 1
        if firstError == nil { firstError = "\(error)" }
    }
}
