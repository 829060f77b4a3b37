import ArgumentParser
import BraidCore
import Glibc

/// `braid-lab serve`: the origin server, speaking braid-traffic.py's protocol. The client sends one
/// request line: "GET N\n" (the server sends N pseudo-random bytes, half-closes, reads to EOF and
/// closes) or "PUT N\n" (the server reads to EOF, then answers "<count> <sha256hex>\n" and closes).
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Origin server: \"GET N\" sends N bytes, \"PUT N\" reads to EOF and answers its sha256.",
        discussion: """
            Connections are accepted and served by epoll loops (one per CPU by default), so idle \
            connections cost a file descriptor and a few hundred bytes, not a thread. With --log, every \
            connection and transfer is appended as a JSON line in braid-traffic.py's format.
            """
    )

    @Option(help: "Address to listen on (IPv4 or IPv6; \"::\" accepts IPv4 too).")
    var listen: String

    @Option(help: "Port to listen on.")
    var port: Int

    @Flag(help: "Listen with IPPROTO_MPTCP.")
    var mptcp = false

    @Option(help: "Append JSON event lines (connection, sent, received, error) to this file.")
    var log: String?

    @Option(help: "Number of event loops (default: one per online CPU).")
    var threads: Int?

    @Option(help: "sha256: hash every transfer; none: do not hash (sha256 logged as \"\").")
    var verify: VerifyMode = .sha256

    @Option(help: "Close connections idle for this many seconds (0: never, so idle connections are held).")
    var idleTimeout: Double = 0

    func validate() throws {
        try validatePort(port)
        if let threads { try validateAtLeast(threads, 1, "--threads") }
        guard idleTimeout >= 0, idleTimeout.isFinite else {
            throw ValidationError("--idle-timeout: \(idleTimeout) must be 0 or a positive number of seconds")
        }
        do {
            _ = try SocketAddress(host: listen, port: port)
        } catch let error as LabError {
            throw ValidationError("--listen: \(error.description)")
        }
    }

    func run() throws {
        raiseFileLimit()
        signal(SIGPIPE, SIG_IGN)
        // SIGTERM/SIGINT become readable on an eventfd that this thread waits on; loops are unaffected.
        let signals = try TerminationSignals()
        let address = try SocketAddress(host: listen, port: port)
        let listener = try Sockets.listener(on: address, mptcp: mptcp)
        let settings = ServerSettings(
            verify: verify,
            log: try log.map { try EventLog(path: $0) },
            idleTimeoutNanos: UInt64(idleTimeout * 1e9)
        )
        let loopCount = threads ?? onlineProcessors()
        var workers = [WorkerThread]()
        for _ in 0..<loopCount {
            let loop = try ServerLoop(listener: listener, settings: settings)
            workers.append(try WorkerThread { loop.run() })
        }
        printError("serve: listening on \(address)\(mptcp ? " (MPTCP)" : ""), \(loopCount) loops")
        while !signals.wait(seconds: 3600) {}
        // Connections in progress are cut off: the server is a test fixture, not a service to drain.
        Glibc.exit(0)
    }
}

/// What every loop of one server shares. EventLog is safe across threads (one write(2) per line).
struct ServerSettings {
    let verify: VerifyMode
    let log: EventLog?
    let idleTimeoutNanos: UInt64
}

/// One accepted connection and where it is in the protocol.
final class ServerConnection {
    enum Phase {
        /// Waiting for the request line (idle connections stay here, costing only this object).
        case request
        /// GET: producing and sending the payload.
        case sending
        /// PUT: reading the payload to EOF.
        case receiving
        /// PUT: sending "<count> <sha256>\n".
        case answering
        /// GET done and half-closed: reading whatever the client still sends until its EOF.
        case draining
    }

    let fd: Int32
    var phase = Phase.request
    var interest: EpollEvents = .input
    var lastActive: UInt64

    /// Bytes of a request line that arrived split across reads (rare; usually empty).
    var requestLine: [UInt8] = []

    /// GET: bytes requested and produced so far. PUT: bytes received so far.
    var total = 0
    var transferred = 0
    var payload: PayloadStream?
    var checksum: Checksum?
    /// GET: the chunk being sent, and the part of it the socket has not taken yet.
    var chunk: ChunkBuffer?
    var pending = 0..<0
    var answer: [UInt8] = []
    var answerSent = 0

    init(fd: Int32, now: UInt64) {
        self.fd = fd
        lastActive = now
    }
}

/// An epoll loop that accepts from the shared listener (EPOLLEXCLUSIVE: one loop woken per
/// connection) and serves the connections it accepted, nonblocking, to completion.
final class ServerLoop {
    private let listener: Int32
    private let settings: ServerSettings
    private let epoll: Epoll
    /// Indexed by descriptor: a loop only ever sees descriptors it accepted itself.
    private var connections: [ServerConnection?] = []
    /// Where reads land: request lines, PUT payloads and drained bytes are consumed before the next read.
    private let scratch = ChunkBuffer()
    private var now = monotonicNanos()
    private var acceptPausedUntil: UInt64?
    /// Running out of descriptors is reported at most every 10 s, not on every retry.
    private var nextAcceptWarning: UInt64 = 0
    private var nextSweep: UInt64 = 0

    /// A loop turn sends at most this much on one connection before looking at the others.
    private static let sendBudget = 4 << 20
    private static let receiveBudget = 16
    private static let maxRequestLine = 64

    init(listener: Int32, settings: ServerSettings) throws {
        self.listener = listener
        self.settings = settings
        epoll = try Epoll()
        try epoll.add(listener, [.input, .exclusive], token: UInt64(listener))
    }

    func run() {
        do {
            while true { try turn() }
        } catch {
            printError("serve: \(error)")
            Glibc.exit(1)
        }
    }

    private func turn() throws {
        try epoll.wait(timeoutMs: 1000) { ready, token in
            now = monotonicNanos()
            let fd = Int32(truncatingIfNeeded: token)
            if fd == listener {
                try acceptConnections()
            } else if fd < connections.count, let connection = connections[Int(fd)] {
                service(connection)
            }
        }
        now = monotonicNanos()
        if let until = acceptPausedUntil, now >= until {
            try epoll.add(listener, [.input, .exclusive], token: UInt64(listener))
            acceptPausedUntil = nil
        }
        if settings.idleTimeoutNanos > 0, now >= nextSweep {
            closeIdleConnections()
            nextSweep = now &+ 1_000_000_000
        }
    }

    private func acceptConnections() throws {
        var peer = SocketAddress()
        for _ in 0..<64 {
            let fd: Int32
            do {
                guard let accepted = try acceptNonblocking(listener, peer: &peer) else { return }
                fd = accepted
            } catch let error as SystemError {
                switch error.errno {
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    // Out of descriptors or memory: stop accepting for a moment instead of spinning on
                    // a listener that stays readable. Connections wait in the backlog meanwhile.
                    if now >= nextAcceptWarning {
                        printError("serve: \(error); pausing accept for 100 ms at a time")
                        nextAcceptWarning = now &+ 10_000_000_000
                    }
                    try epoll.remove(listener)
                    acceptPausedUntil = now &+ 100_000_000
                    return
                default:
                    // ECONNABORTED and friends concern one connection, not the listener.
                    continue
                }
            }
            let connection = ServerConnection(fd: fd, now: now)
            do {
                try epoll.add(fd, .input, token: UInt64(fd))
            } catch {
                close(fd)
                throw error
            }
            if connections.count <= Int(fd) {
                connections.append(contentsOf: repeatElement(nil, count: Int(fd) + 1 - connections.count + 1024))
            }
            connections[Int(fd)] = connection
            settings.log?.record(["event": .string("connection"), "peer": .string(peer.host)])
        }
    }

    private func service(_ connection: ServerConnection) {
        connection.lastActive = now
        do {
            switch connection.phase {
            case .request: try readRequest(connection)
            case .sending: try sendPayload(connection)
            case .receiving: try receivePayload(connection)
            case .answering: try sendAnswer(connection)
            case .draining: try drain(connection)
            }
        } catch {
            settings.log?.record(["event": .string("error"), "error": .string("\(error)")])
            finish(connection)
        }
    }

    private func readRequest(_ connection: ServerConnection) throws {
        guard let count = try Sockets.receive(connection.fd, scratch.bytes) else { return }
        if count == 0 {
            // Closed without a request: an idle (held) connection going away. Not an error.
            finish(connection)
            return
        }
        let bytes = UnsafeRawBufferPointer(scratch.prefix(count))
        guard let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) else {
            connection.requestLine.append(contentsOf: bytes)
            if connection.requestLine.count >= Self.maxRequestLine {
                throw LabError("no request line in the first \(Self.maxRequestLine) bytes")
            }
            return
        }
        connection.requestLine.append(contentsOf: bytes[0..<newline])
        // Bytes after the newline are already payload (a PUT client does not wait for anything).
        try start(connection, surplus: UnsafeRawBufferPointer(rebasing: bytes[(newline + 1)...]))
    }

    private func start(_ connection: ServerConnection, surplus: UnsafeRawBufferPointer) throws {
        let line = String(decoding: connection.requestLine, as: UTF8.self)
        connection.requestLine = []
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\r" || $0 == "\t" })
        guard words.count == 2, let total = Int(words[1]), total >= 0 else {
            throw LabError("bad request line '\(line)' (expected \"GET N\" or \"PUT N\")")
        }
        connection.total = total
        connection.checksum = try Checksum(settings.verify)
        switch words[0] {
        case "GET":
            connection.phase = .sending
            connection.payload = try PayloadStream()
            connection.chunk = ChunkBuffer(size: min(total, transferChunk))
            try watch(connection, .output)
            try sendPayload(connection)
        case "PUT":
            connection.phase = .receiving
            connection.checksum?.update(surplus)
            connection.transferred = surplus.count
            try receivePayload(connection)
        default:
            throw LabError("bad request verb '\(words[0])' (expected GET or PUT)")
        }
    }

    private func sendPayload(_ connection: ServerConnection) throws {
        guard let chunk = connection.chunk, let payload = connection.payload else { return }
        var budget = Self.sendBudget
        while budget > 0 {
            if connection.pending.isEmpty {
                if connection.transferred == connection.total {
                    try finishSending(connection)
                    return
                }
                let size = min(chunk.bytes.count, connection.total - connection.transferred)
                let window = chunk.prefix(size)
                payload.fill(window)
                connection.checksum?.update(UnsafeRawBufferPointer(window))
                connection.transferred += size
                connection.pending = 0..<size
            }
            let unsent = UnsafeRawBufferPointer(rebasing: chunk.bytes[connection.pending])
            guard let sent = try Sockets.send(connection.fd, unsent) else { return }  // EPOLLOUT resumes it
            connection.pending = (connection.pending.lowerBound + sent)..<connection.pending.upperBound
            budget -= sent
        }
    }

    private func finishSending(_ connection: ServerConnection) throws {
        settings.log?.record([
            "event": .string("sent"), "bytes": .int(connection.transferred),
            "sha256": .string(connection.checksum?.finish() ?? ""),
        ])
        connection.chunk = nil
        connection.payload = nil
        connection.checksum = nil
        try Sockets.shutdownWrite(connection.fd)
        connection.phase = .draining
        try watch(connection, .input)
    }

    private func receivePayload(_ connection: ServerConnection) throws {
        for _ in 0..<Self.receiveBudget {
            guard let count = try Sockets.receive(connection.fd, scratch.bytes) else { return }
            if count == 0 {
                // Only after EOF: answering proves the client's half-close arrived.
                let digest = connection.checksum?.finish() ?? ""
                connection.checksum = nil
                settings.log?.record([
                    "event": .string("received"), "bytes": .int(connection.transferred), "sha256": .string(digest),
                ])
                connection.answer = Array("\(connection.transferred) \(digest)\n".utf8)
                connection.phase = .answering
                try sendAnswer(connection)
                return
            }
            connection.checksum?.update(UnsafeRawBufferPointer(scratch.prefix(count)))
            connection.transferred += count
        }
    }

    private func sendAnswer(_ connection: ServerConnection) throws {
        while connection.answerSent < connection.answer.count {
            let sent = try connection.answer.withUnsafeBytes { answer in
                try Sockets.send(connection.fd, UnsafeRawBufferPointer(rebasing: answer[connection.answerSent...]))
            }
            guard let sent else {
                try watch(connection, .output)
                return
            }
            connection.answerSent += sent
        }
        try Sockets.shutdownWrite(connection.fd)
        finish(connection)
    }

    private func drain(_ connection: ServerConnection) throws {
        for _ in 0..<Self.receiveBudget {
            guard let count = try Sockets.receive(connection.fd, scratch.bytes) else { return }
            if count == 0 {
                finish(connection)
                return
            }
        }
    }

    private func watch(_ connection: ServerConnection, _ interest: EpollEvents) throws {
        guard connection.interest != interest else { return }
        try epoll.modify(connection.fd, interest, token: UInt64(connection.fd))
        connection.interest = interest
    }

    /// Closing also removes the descriptor from epoll (it was never duplicated).
    private func finish(_ connection: ServerConnection) {
        connections[Int(connection.fd)] = nil
        close(connection.fd)
    }

    private func closeIdleConnections() {
        let limit = Double(settings.idleTimeoutNanos) / 1e9
        for case let connection? in connections where now &- connection.lastActive > settings.idleTimeoutNanos {
            settings.log?.record([
                "event": .string("error"), "error": .string("idle for \(limit) s in phase \(connection.phase)"),
            ])
            finish(connection)
        }
    }
}
