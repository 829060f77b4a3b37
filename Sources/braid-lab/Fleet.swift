import ArgumentParser
import BraidCore
import BraidTLS
import BraidWire
import Glibc
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// `braid-lab fleet`: many gateways against one concentrator, to measure what a fleet costs it.
/// Each simulated gateway has its own certificate (from `braid pki issue`) and source address,
/// speaks the real control protocol over the real TLS, and reconnects with the gateway's own
/// backoff and jitter; its data connections go through the concentrator's Convert exchange to an
/// origin that holds them (`braid-lab serve`).
struct Fleet: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Simulate N gateways' control channels and M idle data connections each against a concentrator.",
        discussion: """
            Gateway i (1...N) is PREFIXi, with DIR/PREFIXi.crt and .key, and connects from --source + i - 1 \
            (those addresses must be local). Commands on stdin, one a line: `sessions` opens --sessions \
            held data connections per gateway; `verify BYTES` has every gateway PUT BYTES random bytes to \
            the origin and compares the count and sha256 the origin answers; `quit` (or EOF) closes all. \
            Events are JSON lines on stdout: `up` (every gateway granted a key for the first time), \
            `sessions`, `restored` (every gateway granted again after they lost their channels: a \
            concentrator restart; seconds from the first loss), `verified`, `done`.
            """
    )

    @Option(help: "The concentrator's address (numeric IPv4 or IPv6).")
    var connect: String

    @Option(help: "The concentrator's TLS control port.")
    var controlPort = 4803

    @Option(help: "The concentrator's data port.")
    var port = 4800

    @Option(help: "The concentrator's certificate name (as a gateway's server_name).")
    var serverName: String

    @Option(help: "The operator CA (option ca).")
    var ca: String

    @Option(help: "Directory of the gateways' certificates and keys (a `braid pki` DIR/issued).")
    var issued: String

    @Option(help: "Subscriber ids are PREFIX1 ... PREFIXN.")
    var prefix = "fleet_"

    @Option(help: "Gateways to simulate.")
    var count: Int

    @Option(help: "First source address (IPv4); gateway i uses the i-th from it. Default: the kernel's choice.")
    var source: String?

    @Option(help: "Data connections each gateway opens on `sessions`.")
    var sessions = 0

    @Option(help: "Origin address the data connections ask the concentrator for.")
    var origin: String?

    @Option(help: "Origin port.")
    var originPort = 8080

    @Option(help: "First connections in flight at most at the start (later, each gateway follows its backoff).")
    var inFlight = 64

    @Option(help: "Event loop threads.")
    var threads = 1

    @Option(help: "Seconds between keepalives (the gateway's option keepalive).")
    var keepalive = 10

    @Option(help: "Rude: reconnect after this many ms whatever happened, instead of the gateway's backoff.")
    var retryMillis: Int?

    @Option(help: "What each control channel receives is held this many ms (a path delay; the lab has none).")
    var delayMillis = 0

    func validate() throws {
        try validateAtLeast(count, 1, "--count")
        try validateAtLeast(sessions, 0, "--sessions")
        try validateAtLeast(inFlight, 1, "--in-flight")
        try validateAtLeast(threads, 1, "--threads")
        try validateAtLeast(keepalive, 1, "--keepalive")
        if let retryMillis { try validateAtLeast(retryMillis, 1, "--retry-millis") }
        try validateAtLeast(delayMillis, 0, "--delay-millis")
        try validatePort(controlPort)
        try validatePort(port)
        try validatePort(originPort)
        guard IPAddress(connect) != nil else { throw ValidationError("--connect: \(connect) is not an IP address") }
        if let source {
            guard case .v4(let first)? = IPAddress(source) else {
                throw ValidationError("--source: \(source) is not an IPv4 address")
            }
            guard UInt64(first) + UInt64(count) <= UInt64(UInt32.max) else {
                throw ValidationError("--source: \(source) + \(count) addresses runs past 255.255.255.255")
            }
        }
        if let origin, IPAddress(origin) == nil { throw ValidationError("--origin: \(origin) is not an IP address") }
        if sessions > 0, origin == nil { throw ValidationError("--sessions needs --origin") }
    }

    func run() throws {
        raiseFileLimit()
        signal(SIGPIPE, SIG_IGN)
        let server = IPAddress(connect)!
        let target = FleetTarget(
            control: try NIOCore.SocketAddress(ipAddress: "\(server)", port: controlPort),
            data: try NIOCore.SocketAddress(ipAddress: "\(server)", port: port),
            serverName: serverName,
            origin: Endpoint(address: origin.flatMap { IPAddress($0) } ?? server, port: UInt16(originPort)),
            timers: ControlTimers(
                pingIntervalMillis: UInt64(keepalive) * 1000, deadAfterMillis: UInt64(keepalive) * 3000),
            retryMillis: retryMillis.map { UInt64($0) }, delayMillis: Int64(delayMillis))
        // Refused handshakes are counted by the tally; a line each would drown the events.
        let quiet = Logger(label: "braid-lab.fleet") { _ in SwiftLogNoOpLogHandler() }

        let loading = monotonicNanos()
        var contexts: [TLSContext] = []
        contexts.reserveCapacity(count)
        for i in 1...count {
            let name = "\(prefix)\(i)"
            contexts.append(
                try TLSContext(
                    role: .client(serverName: serverName), ca: ca, certificate: "\(issued)/\(name).crt",
                    key: "\(issued)/\(name).key"))
        }
        printError(
            "fleet: \(count) TLS contexts loaded in "
                + "\(MonotonicClock.seconds(from: loading, to: monotonicNanos())) s")

        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        defer { try? group.syncShutdownGracefully() }
        let tally = FleetTally(count: count)
        var firstSource: UInt32?
        if let source, case .v4(let a)? = IPAddress(source) { firstSource = a }
        let gateways = try (0..<count).map { i -> SimulatedGateway in
            let address = try firstSource.map {
                try NIOCore.SocketAddress(ipAddress: "\(IPAddress.v4($0 + UInt32(i)))", port: 0)
            }
            return SimulatedGateway(
                index: i, name: "\(prefix)\(i + 1)", loop: group.next(), tls: contexts[i], source: address,
                target: target, tally: tally, logger: quiet)
        }

        // The first connects, `--in-flight` at a time: the next starts when one has an outcome.
        let next = NIOLockedValueBox(0)
        let startNext = {
            let i = next.withLockedValue { n -> Int in
                defer { n += 1 }
                return n
            }
            if i < gateways.count { gateways[i].start() }
        }
        tally.onFirstOutcome = startNext
        for _ in 0..<min(inFlight, count) { startNext() }

        while let line = readLine() {
            let words = line.split(separator: " ").map(String.init)
            guard let command = words.first else { continue }
            switch command {
            case "sessions":
                openSessions(gateways)
            case "verify":
                guard words.count == 2, let bytes = Int(words[1]), bytes > 0 else {
                    printError("fleet: verify BYTES: \(line.debugDescription) has no byte count")
                    continue
                }
                verify(gateways, bytes: bytes)
            case "quit":
                break
            default:
                printError("fleet: unknown command \(command.debugDescription) (sessions, verify BYTES, quit)")
                continue
            }
            if command == "quit" { break }
        }
        _ = try? EventLoopFuture.andAllComplete(gateways.map { $0.stop() }, on: group.next()).wait()
        var done = tally.totals()
        done["event"] = .string("done")
        done.emit()
    }

    private func openSessions(_ gateways: [SimulatedGateway]) {
        let start = monotonicNanos()
        let loop = gateways[0].loop
        let opened = (try? EventLoopFuture.whenAllSucceed(gateways.map { $0.openSessions(sessions) }, on: loop).wait())
            ?? []
        let open = opened.reduce(0, +)
        let event: JSONObject = [
            "event": .string("sessions"), "open": .int(open), "wanted": .int(sessions * gateways.count),
            "seconds": .rounded(MonotonicClock.seconds(from: start, to: monotonicNanos())),
        ]
        event.emit()
    }

    private func verify(_ gateways: [SimulatedGateway], bytes: Int) {
        let payload = SecureRandom.bytes(bytes)
        let sha256: String
        do {
            let checksum = try Checksum(.sha256)
            payload.withUnsafeBytes { checksum.update($0) }
            sha256 = checksum.finish()
        } catch {
            printError("fleet: \(error)")
            return
        }
        let loop = gateways[0].loop
        let results =
            (try? EventLoopFuture.whenAllComplete(gateways.map { $0.verifiedPut(payload, sha256: sha256) }, on: loop)
                .wait()) ?? []
        var failed = 0
        var firstError: String?
        for case .failure(let error) in results {
            failed += 1
            if firstError == nil { firstError = "\(error)" }
        }
        var event: JSONObject = [
            "event": .string("verified"), "ok": .int(results.count - failed), "failed": .int(failed),
            "bytes": .int(bytes), "sha256": .string(sha256),
        ]
        if let firstError { event["error"] = .string(firstError) }
        event.emit()
    }
}
