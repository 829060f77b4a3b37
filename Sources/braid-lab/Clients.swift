import ArgumentParser
import BraidCore
import Glibc

/// Options shared by the single-transfer clients (`get` and `put`).
struct TransferOptions: ParsableArguments {
    @OptionGroup var target: TargetOptions

    @Option(help: "Bytes to transfer.")
    var bytes: Int

    @Option(help: "sha256: hash what is transferred; none: do not (sha256 reported as \"\").")
    var verify: VerifyMode = .sha256

    @Option(help: "Seconds without progress (connect, send or receive) before giving up.")
    var timeout: Double = 120

    @Option(help: "Local address to bind before connecting (selects the source and so the route).")
    var bind: String?

    func validate() throws {
        try validateAtLeast(bytes, 0, "--bytes")
        try validatePositive(timeout, "--timeout")
        _ = try localAddress()
    }

    func localAddress() throws -> SocketAddress? {
        guard let bind else { return nil }
        do {
            return try SocketAddress(host: bind, port: 0)
        } catch let error as LabError {
            throw ValidationError("--bind: \(error.description)")
        }
    }

    func dial() throws -> TimedSocket {
        let fd = try Sockets.dial(try target.address(), mptcp: target.mptcp, bind: try localAddress(), timeout: timeout)
        return TimedSocket(fd: fd, timeout: timeout)
    }
}

/// Prints a client's JSON line, and for a failed run also the reason on stderr and a non-zero exit.
private func report(_ result: JSONObject, failure: String?, command: String) throws {
    result.emit()
    if let failure {
        printError("\(command): \(failure)")
        throw ExitCode.failure
    }
}

/// `braid-lab get`: downloads N bytes and reports their sha256, duration and time to first byte.
struct Get: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send \"GET N\", read to EOF; one JSON line: result, bytes, sha256, seconds, ttfb_ms, mbps."
    )

    @OptionGroup var options: TransferOptions

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let checksum = try Checksum(options.verify)
        let buffer = ChunkBuffer()
        var received = 0
        var firstByte: UInt64?
        var failure: String?
        let start = monotonicNanos()
        do {
            let socket = try options.dial()
            defer { close(socket.fd) }
            try socket.writeAll("GET \(options.bytes)\n")
            while true {
                let count = try socket.read(into: buffer.bytes)
                if count == 0 { break }
                if firstByte == nil { firstByte = monotonicNanos() }
                checksum.update(UnsafeRawBufferPointer(buffer.prefix(count)))
                received += count
            }
            if received != options.bytes {
                failure = "received \(received) bytes, expected \(options.bytes)"
            }
        } catch {
            failure = "\(error)"
        }
        let end = monotonicNanos()
        let seconds = MonotonicClock.seconds(from: start, to: end)
        var result: JSONObject = [
            "result": .string(failure == nil ? "ok" : "error"),
            "bytes": .int(received),
            "sha256": .string(checksum.finish()),
            "seconds": .rounded(seconds, places: 6),
            "ttfb_ms": .optional(firstByte.map { MonotonicClock.milliseconds(from: start, to: $0) }),
            "mbps": .rounded(seconds > 0 ? Double(received) * 8 / seconds / 1e6 : 0),
        ]
        result["error"] = failure.map { .string($0) }
        try report(result, failure: failure, command: "get")
    }
}

/// `braid-lab put`: uploads N bytes, half-closes, and checks the server's "<count> <sha256>" answer.
struct Put: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send \"PUT N\" and N bytes, half-close, read the answer; one JSON line: result, bytes, sha256, "
            + "answer, seconds, mbps."
    )

    @OptionGroup var options: TransferOptions

    /// The answer is one short line; anything longer is not braid-lab's or braid-traffic.py's server.
    private static let maxAnswer = 4096

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let checksum = try Checksum(options.verify)
        let payload = try PayloadStream()
        let buffer = ChunkBuffer()
        var sent = 0
        var answer = ""
        var failure: String?
        let start = monotonicNanos()
        do {
            let socket = try options.dial()
            defer { close(socket.fd) }
            try socket.writeAll("PUT \(options.bytes)\n")
            while sent < options.bytes {
                let window = buffer.prefix(min(transferChunk, options.bytes - sent))
                payload.fill(window)
                checksum.update(UnsafeRawBufferPointer(window))
                try socket.writeAll(UnsafeRawBufferPointer(window))
                sent += window.count
            }
            try Sockets.shutdownWrite(socket.fd)
            answer = try readAnswer(socket, into: buffer)
        } catch {
            failure = "\(error)"
        }
        let end = monotonicNanos()
        let digest = checksum.finish()
        if failure == nil {
            let matches = options.verify == .sha256
                ? answer == "\(options.bytes) \(digest)"
                : answer.hasPrefix("\(options.bytes) ")
            if !matches {
                let expected = options.verify == .sha256 ? "\(options.bytes) \(digest)" : "\(options.bytes) ..."
                failure = "server answered '\(answer)', expected '\(expected)'"
            }
        }
        let seconds = MonotonicClock.seconds(from: start, to: end)
        var result: JSONObject = [
            "result": .string(failure == nil ? "ok" : "error"),
            "bytes": .int(sent),
            "sha256": .string(digest),
            "answer": .string(answer),
            "seconds": .rounded(seconds, places: 6),
            "mbps": .rounded(seconds > 0 ? Double(sent) * 8 / seconds / 1e6 : 0),
        ]
        result["error"] = failure.map { .string($0) }
        try report(result, failure: failure, command: "put")
    }

    /// Reads the answer line to EOF. Only the line terminator is removed: with `--verify none` on the
    /// server the answer is "<count> " and its trailing space is part of what is checked.
    private func readAnswer(_ socket: TimedSocket, into buffer: ChunkBuffer) throws -> String {
        var bytes: [UInt8] = []
        while true {
            let count = try socket.read(into: buffer.prefix(Self.maxAnswer))
            if count == 0 { break }
            bytes.append(contentsOf: UnsafeRawBufferPointer(buffer.prefix(count)))
            if bytes.count > Self.maxAnswer { throw LabError("answer longer than \(Self.maxAnswer) bytes") }
        }
        while let last = bytes.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// `braid-lab ttfb`: sequential short requests; how long until the first response byte.
struct TimeToFirstByte: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ttfb",
        abstract: "K sequential \"GET B\" requests; one JSON line with the median, min and max time from "
            + "connect() to the first response byte, and the median connect time."
    )

    @OptionGroup var target: TargetOptions

    @Option(help: "Number of requests.")
    var count = 20

    @Option(help: "Bytes per response.")
    var bytes = 1000

    @Option(help: "Seconds without progress before a request counts as failed.")
    var timeout: Double = 10

    func validate() throws {
        try validateAtLeast(count, 1, "--count")
        try validateAtLeast(bytes, 1, "--bytes")
        try validatePositive(timeout, "--timeout")
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let address = try target.address()
        let buffer = ChunkBuffer(size: 64 * 1024)
        var firstByteMs: [Double] = []
        var connectMs: [Double] = []
        var failure: String?
        for _ in 0..<count {
            do {
                let (connect, first) = try sample(address, buffer)
                connectMs.append(connect)
                firstByteMs.append(first)
            } catch {
                failure = failure ?? "\(error)"
            }
        }
        var result: JSONObject = [
            "result": .string(failure == nil ? "ok" : "error"),
            "count": .int(firstByteMs.count),
            "median_ms": .optional(Statistics.median(firstByteMs)),
            "min_ms": .optional(firstByteMs.min()),
            "max_ms": .optional(firstByteMs.max()),
            "connect_ms_median": .optional(Statistics.median(connectMs)),
        ]
        result["error"] = failure.map { .string("\(count - firstByteMs.count) of \(count) failed; first: \($0)") }
        try report(result, failure: failure, command: "ttfb")
    }

    /// One request: (connect ms, first byte ms), both from the start of connect().
    private func sample(_ address: SocketAddress, _ buffer: ChunkBuffer) throws -> (Double, Double) {
        let start = monotonicNanos()
        let fd = try Sockets.dial(address, mptcp: target.mptcp, timeout: timeout)
        defer { close(fd) }
        let connected = monotonicNanos()
        let socket = TimedSocket(fd: fd, timeout: timeout)
        try socket.writeAll("GET \(bytes)\n")
        var received = 0
        var firstByte: UInt64?
        while true {
            let count = try socket.read(into: buffer.bytes)
            if count == 0 { break }
            if firstByte == nil { firstByte = monotonicNanos() }
            received += count
        }
        guard received == bytes, let firstByte else {
            throw LabError("received \(received) bytes, expected \(bytes)")
        }
        return (
            MonotonicClock.milliseconds(from: start, to: connected),
            MonotonicClock.milliseconds(from: start, to: firstByte)
        )
    }
}
