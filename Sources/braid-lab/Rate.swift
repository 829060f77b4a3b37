import ArgumentParser
import BraidCore
import Glibc

/// `braid-lab rate`: how many short connections per second the path sustains, and their latency.
struct Rate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Connection rate: C concurrent workers loop connect, \"GET B\", read to EOF, close.",
        discussion: """
            One JSON line: result, connections, failures, per_second, seconds, p50_ms, p99_ms (latency of \
            each whole connection, connect() to EOF). Workers are nonblocking state machines on epoll.
            """
    )

    @OptionGroup var target: TargetOptions

    @Option(help: "How long to start new connections, in seconds.")
    var seconds: Double

    @Option(help: "Connections in flight.")
    var concurrency = 32

    @Option(help: "Bytes per response.")
    var bytes = 100

    @Option(help: "Event loop threads sharing the workers.")
    var threads = 1

    @Option(help: "Seconds a single connection may take before it counts as a failure.")
    var timeout: Double = 10

    func validate() throws {
        try validatePositive(seconds, "--seconds")
        try validateAtLeast(concurrency, 1, "--concurrency")
        try validateAtLeast(bytes, 0, "--bytes")
        try validateAtLeast(threads, 1, "--threads")
        try validatePositive(timeout, "--timeout")
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        raiseFileLimit()
        let address = try target.address()
        let start = monotonicNanos()
        let deadline = start &+ UInt64(seconds * 1e9)
        let loopCount = min(threads, concurrency)
        var loops = [RateLoop]()
        var workers = [WorkerThread]()
        for index in 0..<loopCount {
            let share = concurrency / loopCount + (index < concurrency % loopCount ? 1 : 0)
            let loop = try RateLoop(
                address: address, mptcp: target.mptcp, concurrency: share, bytes: bytes,
                deadline: deadline, timeoutNanos: UInt64(timeout * 1e9))
            loops.append(loop)
            workers.append(try WorkerThread { loop.run() })
        }
        workers.forEach { $0.join() }
        let elapsed = MonotonicClock.seconds(from: start, to: monotonicNanos())

        let latencies = loops.flatMap { $0.latenciesMicros }.map { Double($0) / 1000 }.sorted()
        let failures = loops.reduce(0) { $0 + $1.failures }
        let firstError = loops.lazy.compactMap { $0.firstError }.first
        var failure: String?
        if let firstError {
            failure = "\(failures) failed connections; first: \(firstError)"
        } else if latencies.isEmpty {
            failure = "no connection completed"
        }
        var result: JSONObject = [
            "result": .string(failure == nil ? "ok" : "error"),
            "connections": .int(latencies.count),
            "failures": .int(failures),
            "per_second": .rounded(elapsed > 0 ? Double(latencies.count) / elapsed : 0, places: 1),
            "seconds": .rounded(elapsed),
            "p50_ms": .optional(Statistics.percentile(sorted: latencies, 0.50)),
            "p99_ms": .optional(Statistics.percentile(sorted: latencies, 0.99)),
        ]
        result["error"] = failure.map { .string($0) }
        result.emit()
        if let failure {
            printError("rate: \(failure)")
            throw ExitCode.failure
        }
    }
}

/// One thread's share of the rate workers: each slot is a connection going through
/// connect → send request → read to EOF → close, restarted until the deadline.
final class RateLoop {
    private enum Phase {
        case idle
        case connecting
        case reading
    }

    private struct Slot {
        var fd: Int32 = -1
        var phase = Phase.idle
        var started: UInt64 = 0
        var received = 0
    }

    private let address: SocketAddress
    private let mptcp: Bool
    private let expected: Int
    private let request: [UInt8]
    private let deadline: UInt64
    private let timeoutNanos: UInt64
    private var slots: [Slot]
    private let epoll: Epoll
    private let scratch = ChunkBuffer(size: 64 * 1024)
    private var now = monotonicNanos()
    /// Slots whose socket could not even be created or connected (e.g. no ephemeral port left). They
    /// retry on the next turn, after a short wait, instead of spinning.
    private var stalled: [Int] = []

    private(set) var latenciesMicros: [UInt32] = []
    private(set) var failures = 0
    private(set) var firstError: String?

    init(address: SocketAddress, mptcp: Bool, concurrency: Int, bytes: Int, deadline: UInt64,
         timeoutNanos: UInt64) throws {
        self.address = address
        self.mptcp = mptcp
        expected = bytes
        request = Array("GET \(bytes)\n".utf8)
        self.deadline = deadline
        self.timeoutNanos = timeoutNanos
        slots = Array(repeating: Slot(), count: concurrency)
        epoll = try Epoll(capacity: max(64, min(concurrency, 4096)))
    }

    func run() {
        for index in slots.indices { begin(index) }
        var nextSweep = now &+ 100_000_000
        while slots.contains(where: { $0.phase != .idle }) || (!stalled.isEmpty && now < deadline) {
            do {
                try epoll.wait(timeoutMs: stalled.isEmpty ? 100 : 10) { ready, token in
                    now = monotonicNanos()
                    advance(Int(token), ready)
                }
            } catch {
                printError("rate: \(error)")
                Glibc.exit(1)
            }
            now = monotonicNanos()
            if !stalled.isEmpty {
                let retry = stalled
                stalled = []
                retry.forEach { begin($0) }
            }
            if now >= nextSweep {
                expireSlowConnections()
                nextSweep = now &+ 100_000_000
            }
        }
    }

    private func begin(_ index: Int) {
        guard now < deadline else { return }
        do {
            let fd = try Sockets.stream(family: address.family, mptcp: mptcp)
            slots[index] = Slot(fd: fd, phase: .connecting, started: now, received: 0)
            // Writability means the handshake finished, or failed (the send then reports why).
            _ = try Sockets.startConnect(fd, to: address)
            try epoll.add(fd, .output, token: UInt64(index))
        } catch {
            fail(index, error)
            stalled.append(index)
        }
    }

    private func advance(_ index: Int, _ ready: EpollEvents) {
        do {
            switch slots[index].phase {
            case .idle:
                return
            case .connecting:
                if !ready.isDisjoint(with: [.error, .hangup]) {
                    let code = try Sockets.pendingError(slots[index].fd)
                    throw SystemError("connect \(address)", errno: code != 0 ? code : ECONNRESET)
                }
                let sent = try request.withUnsafeBytes { try Sockets.send(slots[index].fd, $0) }
                guard sent == request.count else { throw LabError("request line not sent in one piece") }
                slots[index].phase = .reading
                try epoll.modify(slots[index].fd, .input, token: UInt64(index))
            case .reading:
                while let count = try Sockets.receive(slots[index].fd, scratch.bytes) {
                    if count == 0 {
                        try complete(index)
                        return
                    }
                    slots[index].received += count
                }
            }
        } catch {
            fail(index, error)
            begin(index)
        }
    }

    private func complete(_ index: Int) throws {
        let slot = slots[index]
        guard slot.received == expected else {
            throw LabError("received \(slot.received) bytes, expected \(expected)")
        }
        close(slot.fd)
        slots[index] = Slot()
        latenciesMicros.append(UInt32(clamping: (now &- slot.started) / 1000))
        begin(index)
    }

    private func fail(_ index: Int, _ error: Error) {
        failures += 1
        if firstError == nil { firstError = "\(error)" }
        if slots[index].fd >= 0 { close(slots[index].fd) }
        slots[index] = Slot()
    }

    private func expireSlowConnections() {
        for index in slots.indices where slots[index].phase != .idle && now &- slots[index].started > timeoutNanos {
            fail(index, LabError("connection to \(address) took longer than \(Double(timeoutNanos) / 1e9) s (timeout)"))
            begin(index)
        }
    }
}
