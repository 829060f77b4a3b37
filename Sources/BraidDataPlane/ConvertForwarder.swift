import BraidCore
import BraidWire
import CBraidLinux
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Serves data connections: an MPTCP listener whose connections start with an authenticated
/// RFC 8803 Convert request. A valid request for an allowed destination gets a TCP connection to
/// it, the success reply, and a relay; anything else gets an Error TLV and a close.
///
/// Until a connection has authenticated it costs almost nothing: it is reset at accept when its
/// source has too many handshakes pending, or when every slot is taken and its source holds the
/// most (otherwise the heaviest source's oldest handshake gives way), it holds its descriptor for
/// at most the handshake timeout, and whatever is wrong with it (malformed, cut short, stalled, bad
/// or unknown key, stale or older than the process, replayed) it gets the same 8-byte Not
/// Authorized answer and a FIN, with no drain period. Each reason goes to the debug log; a summary every ten seconds says how many
/// were turned away, why, and from where.
public final class ConvertForwarder {
    public struct Configuration {
        public var listen: Endpoint
        public var handshakeTimeoutNanos: UInt64
        public var connectTimeoutNanos: UInt64
        /// Handshakes accepted and not yet authenticated, at most (`max_pending`).
        public var maxPending: Int
        /// The same, from one IPv4 address or IPv6 /64 (`max_pending_per_source`).
        public var maxPendingPerSource: Int
        /// Names a request's MAC may be bound to: `identity`, else the certificate's name.
        public var identities: [String]
        /// Whether the address a connection arrived on is one of its names too (what a gateway
        /// without `server_name` binds to); not when `identity` names the concentrator.
        public var addressIsIdentity: Bool
        /// Requests stamped earlier (ms since 1970) are refused as `before_start`: the process's
        /// start, so nothing captured before a restart is accepted after it.
        public var notBeforeMillis: UInt64
        /// The monotonic clock when `notBeforeMillis` was read, if it is the process's start: the
        /// floor then follows a step of the wall clock (NTP setting back a clock that was ahead at
        /// start would otherwise refuse every request until the clock caught up).
        public var notBeforeMonotonicNanos: UInt64?
        /// The kernel congestion control of accepted connections' subflows (the concentrator's
        /// `congestion_control`); nil keeps the system's default.
        public var congestionControl: String? = nil
        /// Seconds of silence before an accepted connection's peer is probed (the concentrator's
        /// `keepalive`); 0 never.
        public var keepaliveSeconds: UInt32 = 0

        /// The floor as the wall clock reads it now.
        func currentNotBeforeMillis() -> UInt64 {
            guard let start = notBeforeMonotonicNanos else { return notBeforeMillis }
            let elapsed = (monotonicNanos() &- start) / 1_000_000
            let now = wallClockMillis()
            return now > elapsed ? now - elapsed : 0
        }

        public init(
            listen: Endpoint, handshakeTimeoutNanos: UInt64, connectTimeoutNanos: UInt64 = 10_000_000_000,
            maxPending: Int = 16384, maxPendingPerSource: Int = 1024, identities: [String] = [],
            addressIsIdentity: Bool = true, notBeforeMillis: UInt64 = 0, notBeforeMonotonicNanos: UInt64? = nil
        ) {
            self.notBeforeMonotonicNanos = notBeforeMonotonicNanos
            self.addressIsIdentity = addressIsIdentity
            self.listen = listen
            self.handshakeTimeoutNanos = handshakeTimeoutNanos
            self.connectTimeoutNanos = connectTimeoutNanos
            self.maxPending = maxPending
            self.maxPendingPerSource = maxPendingPerSource
            self.identities = identities
            self.notBeforeMillis = notBeforeMillis
        }
    }

    /// A destination the role's policy refuses.
    public struct DestinationDenial: Sendable {
        /// The rule, for the counters: one of a bounded set of names ("built-in 10.0.0.0/8").
        public var rule: String
        /// Everything about it, for the debug log.
        public var reason: String

        public init(rule: String, reason: String) {
            self.rule = rule
            self.reason = reason
        }
    }

    /// Why a destination is refused, or nil to connect.
    public typealias DestinationPolicy = (Endpoint) -> DestinationDenial?
    /// Whether an authenticated request's subscriber may open one more session, and with what limits.
    public typealias AdmissionPolicy = (ConvertRequest) -> Admission

    let config: Configuration
    let keys: ConvertServerHandshake.KeyLookup
    let policy: DestinationPolicy
    let admission: AdmissionPolicy
    let logger: Logger
    /// One replay state for all reactors, in shards by key id behind their own locks.
    private let replay = ReplayShards()
    private var listener: Listener?
    /// One per reactor when `keepaliveSeconds` is set, by reactor index; built at start, read-only
    /// after.
    private(set) var subflowSweeps: [Int: SubflowSweep] = [:]
    public let counters = SessionCounters()
    /// Handshakes accepted and not yet authenticated, against `maxPending` and `maxPendingPerSource`.
    let pending = PendingHandshakes<PendingAcceptor>()
    /// Connections turned away before authentication since the last summary.
    let refusals = RefusalTally<RefusalReason>()
    /// Authenticated connections to destinations the policy refuses, by rule, since the last summary:
    /// a gateway's users can ask for such destinations as fast as they like.
    let deniedDestinations = RefusalTally<RefusalReason>()
    /// Authenticated connections the subscriber's admission refused (its class's `max_sessions`,
    /// a subscriber disabled between the MAC check and the admission), since start.
    let refusedSessions = RefusalTally<String>()
    /// How often the summary of `refusals` is logged (when there is anything to say).
    static let summaryIntervalNanos: UInt64 = 10_000_000_000

    /// `keys` finds the key for a request's key id (session keys, the pre-shared key behind id
    /// 0); `admission` counts the session against its subscriber and gives its rate limits.
    public init(
        config: Configuration, keys: @escaping ConvertServerHandshake.KeyLookup, logger: Logger,
        admission: @escaping AdmissionPolicy = { _ in .admit(SessionGrant(limitToOrigin: nil, limitToClient: nil, ticket: nil)) },
        policy: @escaping DestinationPolicy
    ) {
        self.config = config
        self.keys = keys
        self.admission = admission
        self.policy = policy
        self.logger = logger
    }

    /// Binds the MPTCP listener (dual stack on `::`, Fast Open with cookies) and starts accepting.
    public func start(group: ReactorGroup) throws {
        let listen = config.listen
        let fd = try Sockets.listener(on: listen, mptcp: true, backlog: 4096) { fd in
            // Fast Open with cookies: a gateway puts its request in the SYN once its kernel has the
            // cookie from an earlier connection. Not TCP_FASTOPEN_NO_COOKIE: with it one spoofed
            // SYN with data became a socket accept(2) handed us, holding a descriptor and a
            // pending slot for handshake_timeout without a round trip (256 such SYNs: 256
            // descriptors, tests/netns/hostile/flood.sh). A cookie is a MAC of the client's
            // address, so only a source that saw our SYN-ACK once can skip the handshake.
            try Sockets.setInt(fd, braid_SOL_TCP, braid_TCP_FASTOPEN, 4096, "TCP_FASTOPEN")
            // Accepted connections inherit TCP_NODELAY from the listener (MPTCP ones too): one
            // setsockopt at start instead of one per connection.
            try Sockets.setInt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1, "TCP_NODELAY")
            if !listen.address.isIPv4 {
                try Sockets.setInt(fd, braid_SOL_IPV6, IPV6_V6ONLY, 0, "IPV6_V6ONLY")
            }
            // Set once on the listener: accepted subflows inherit it, joins included, so the
            // accept path pays nothing for it.
            if let cc = config.congestionControl {
                do {
                    try Sockets.setCongestionControl(fd, cc)
                } catch {
                    logger.warning(
                        "data connections keep the system's congestion control", metadata: ["error": "\(error)"])
                }
            }
            // Keepalive the same way: accepted connections and every subflow they get inherit it.
            // A gateway that vanished (power, every uplink) never sends the FIN or reset that
            // would end its idle sessions; unanswered probes do.
            if config.keepaliveSeconds > 0 {
                let idle = Int32(clamping: config.keepaliveSeconds)
                try Sockets.setInt(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE")
                try Sockets.setInt(fd, braid_SOL_TCP, TCP_KEEPIDLE, idle, "TCP_KEEPIDLE")
                try Sockets.setInt(fd, braid_SOL_TCP, TCP_KEEPINTVL, max(1, idle / 4), "TCP_KEEPINTVL")
                try Sockets.setInt(fd, braid_SOL_TCP, TCP_KEEPCNT, 4, "TCP_KEEPCNT")
            }
        }
        if config.keepaliveSeconds > 0 {
            let period = UInt64(config.keepaliveSeconds) * 1_000_000_000
            for reactor in group.reactors {
                subflowSweeps[reactor.index] = SubflowSweep(reactor: reactor, period: period)
            }
        }
        let l = Listener(fd: fd, endpoint: listen)
        listener = l
        l.attach(to: group) { [self] reactor, fd, peer in
            accept(fd, on: reactor, peer: peer)
        }
        if let first = group.reactors.first {
            first.execute { [weak self, weak first] in
                guard let first else { return }
                self?.scheduleRefusalSummary(on: first)
            }
        }
    }

    /// A new connection, before anything is allocated for it or read from it: over a pending
    /// limit it is reset at once, which costs the same as never having accepted it. `peer` is
    /// what accept(2) said; without it (tests hand over sockets of their own), getpeername(2).
    func accept(_ fd: Int32, on reactor: Reactor, peer: PeerAddress? = nil) {
        guard let peer = peer ?? PeerAddress(peerOf: fd), let source = peer.sourceBlock else {
            Glibc.close(fd)  // reset between accept and here: there is no one to answer
            return
        }
        let acceptor = ConvertAcceptor(reactor: reactor, fd: fd, forwarder: self, source: source, peer: peer)
        let admission = pending.admit(
            source, holder: PendingAcceptor(acceptor), maxTotal: config.maxPending,
            maxPerSource: config.maxPendingPerSource)
        switch admission {
        case .admitted(let ticket, let evicted):
            acceptor.start(holding: ticket)
            // The evicted handshake may live on another reactor: it is ended there, by its own thread.
            if let victim = evicted?.acceptor {
                victim.reactor.execute { victim.evict() }
            }
        case .overTotal:
            turnAway(fd, from: source, .maxPending)
        case .overSource:
            turnAway(fd, from: source, .maxPendingPerSource)
        }
    }

    private func turnAway(_ fd: Int32, from source: SourceBlock, _ reason: RefusalReason) {
        refusals.record(reason, from: source)
        logger.debug("data connection reset at accept", metadata: ["source": "\(source)", "reason": "\(reason)"])
        Sockets.closeWithReset(fd)
    }

    /// Logs what `refusals` counted every `summaryIntervalNanos`, at notice: one line for any
    /// number of connections.
    private func scheduleRefusalSummary(on reactor: Reactor) {
        reactor.schedule(afterNanos: Self.summaryIntervalNanos) { [weak self, weak reactor] in
            guard let self, let reactor else { return }
            self.logRefusalSummary()
            self.scheduleRefusalSummary(on: reactor)
        }
    }

    func logRefusalSummary() {
        if let denied = deniedDestinations.take() {
            logger.notice(
                "data connections to refused destinations",
                metadata: [
                    "seconds": "\(Self.summaryIntervalNanos / 1_000_000_000)", "refused": "\(denied.total)",
                    "rules": "\(denied.reasonsText)", "sources": "\(denied.sourcesText)",
                ])
        }
        guard let summary = refusals.take() else { return }
        logger.notice(
            "data connections refused before authentication",
            metadata: [
                "seconds": "\(Self.summaryIntervalNanos / 1_000_000_000)", "refused": "\(summary.total)",
                "reasons": "\(summary.reasonsText)", "sources": "\(summary.sourcesText)",
                "pending": "\(pending.count())",
            ])
    }

    /// Refusals since start, by reason name: connections refused before they authenticated
    /// (`max_pending`, `timeout`, `bad_mac`, ...), authenticated ones whose destination a rule
    /// refused (by rule), and ones their subscriber's admission refused. For the status document
    /// and the metrics.
    public func refusalTotals()
        -> (unauthenticated: ReasonCounts, destination: ReasonCounts, session: ReasonCounts)
    {
        (
            refusals.totals().map { ("\($0.reason)", $0.count) },
            deniedDestinations.totals().map { ("\($0.reason)", $0.count) },
            refusedSessions.totals().map { ($0.reason, $0.count) }
        )
    }

    public typealias ReasonCounts = [(reason: String, count: UInt64)]

    /// Closes the listener. Call after the reactor group stopped.
    public func stop() {
        listener?.close()
        listener = nil
    }

    func feed(_ handshake: inout ConvertServerHandshake, _ bytes: UnsafeRawBufferPointer) -> ConvertServerHandshake.Action {
        var replay = self.replay
        return handshake.feed(bytes, nowMillis: wallClockMillis(), replay: &replay)
    }
}

/// How `pending` reaches the acceptor whose slot it gives away: weakly, so a pending slot never
/// keeps an ended acceptor alive (the acceptor gives its slot back when it ends).
struct PendingAcceptor {
    weak var acceptor: ConvertAcceptor?

    init(_ acceptor: ConvertAcceptor) { self.acceptor = acceptor }
}

/// One data connection from its accept to the relay: reads the request (bounded in size and
/// time), applies policy, connects to the destination, answers.
final class ConvertAcceptor: ReactorHandler {
    private enum State {
        case reading
        case connecting(origin: Int32, request: ConvertRequest, remainder: [UInt8])
        case refusing
        case done
    }

    let reactor: Reactor
    private let client: Int32
    private let forwarder: ConvertForwarder
    private var handshake: ConvertServerHandshake
    private var state = State.reading
    /// Its block, for the pending limits and the refusal summary.
    private let source: SourceBlock
    /// One of `forwarder.pending`'s slots, held until it authenticates or ends.
    private var pendingTicket: PendingHandshakes<PendingAcceptor>.Ticket?
    /// The client's address as accepted, made a string only when a line is logged.
    private let peerAddress: PeerAddress
    private var peer: String { peerAddress.description }
    /// The subscriber's limits and session count, from admission until the relay takes them.
    private var grant: SessionGrant?

    init(reactor: Reactor, fd: Int32, forwarder: ConvertForwarder, source: SourceBlock, peer: PeerAddress) {
        self.reactor = reactor
        self.peerAddress = peer
        self.client = fd
        self.forwarder = forwarder
        // The address the gateway dialled is its default identity for us (its `server_name`
        // defaults to its `server`); a DNAT in front of the concentrator needs `identity` instead.
        let arrivedOn =
            forwarder.config.addressIsIdentity ? Sockets.localEndpoint(fd).map { ["\($0.address)"] } ?? [] : []
        self.handshake = ConvertServerHandshake(
            lookup: forwarder.keys, identities: forwarder.config.identities + arrivedOn,
            notBeforeMillis: forwarder.config.currentNotBeforeMillis())
        self.source = source
    }

    deinit {
        releasePendingSlot()
    }

    func start(holding ticket: PendingHandshakes<PendingAcceptor>.Ticket) {
        pendingTicket = ticket
        do {
            // The relay's events from the start: the relay then takes the socket over without an
            // epoll_ctl(MOD). The writable edge this adds comes with the first readable one.
            try reactor.register(client, events: SpliceRelay.events, handler: self)
        } catch {
            forwarder.logger.warning("cannot serve a data connection", metadata: ["peer": "\(peer)", "error": "\(error)"])
            releasePendingSlot()
            state = .done
            Glibc.close(client)
            return
        }
        reactor.schedule(afterNanos: forwarder.config.handshakeTimeoutNanos) { [weak self] in self?.handshakeTimedOut() }
        readRequest()  // with Fast Open the request is already here
    }

    func ready(fd: Int32, events: UInt32) {
        switch state {
        case .reading:
            // Registered for writability too (for the relay): only news to read is worth a recv.
            guard events & (braid_EPOLLIN | braid_EPOLLRDHUP | braid_EPOLLERR | braid_EPOLLHUP) != 0 else { return }
            readRequest()
        case .connecting(let origin, let request, let remainder):
            guard fd == origin else { return }  // the client's bytes wait for the relay
            guard let err = Sockets.pendingConnectError(origin) else { return }
            if err != 0 {
                reactor.close(origin)
                refuse(ConvertError(Self.code(for: err), "connect \(request.destination): \(String(cString: strerror(err)))"))
                return
            }
            relay(origin: origin, request: request, remainder: remainder)
        case .refusing:
            drain()
        case .done:
            break
        }
    }

    private func readRequest() {
        while case .reading = state {
            let r = transfer { recv(client, reactor.scratch.baseAddress!, 4096, 0) }
            switch r {
            case .moved(let n):
                switch forwarder.feed(&handshake, UnsafeRawBufferPointer(rebasing: reactor.scratch[0..<n])) {
                case .needMore:
                    continue
                case .reject(let error):
                    refuseUnauthenticated(.request(handshake.refusal ?? .malformed), "\(error)")
                case .connect(let request, let remainder):
                    releasePendingSlot()  // authenticated: from here on the subscriber's limits apply
                    if let denial = forwarder.policy(request.destination) {
                        // Counted and logged at debug: the summary says how many, by rule and source.
                        forwarder.deniedDestinations.record(.destination(rule: denial.rule), from: source)
                        refuse(ConvertError(.notAuthorized, "destination denied: \(denial.reason)"), logLevel: .debug)
                    } else {
                        connect(request, remainder: remainder)
                    }
                }
            case .wouldBlock:
                return
            case .end:
                if case .reject(let error) = handshake.endOfStream() {
                    refuseUnauthenticated(.request(.truncated), "\(error)")
                }
            case .failed(let e):
                noteUnauthenticated(.aborted, "\(SystemError("recv", errno: e))")
                state = .done
                reactor.close(client)
            }
        }
    }

    private func connect(_ request: ConvertRequest, remainder: [UInt8]) {
        switch forwarder.admission(request) {
        case .refuse(let error):
            forwarder.refusedSessions.record(
                error.code == .resourceExceeded ? "max_sessions" : "subscriber not enabled", from: source)
            refuse(error)
            return
        case .admit(let g):
            grant = g
        }
        let destination = request.destination
        let origin: Int32
        do {
            origin = try Sockets.stream(family: destination.address.isIPv4 ? AF_INET : AF_INET6, mptcp: false)
        } catch {
            refuse(ConvertError(.networkFailure, "\(error)"))
            return
        }
        do {
            try Sockets.setInt(origin, Int32(IPPROTO_TCP), TCP_NODELAY, 1, "TCP_NODELAY")
            let connected = try Sockets.connect(origin, to: destination)
            if connected {
                relay(origin: origin, request: request, remainder: remainder)
                return
            }
            // The relay's events (EPOLLOUT tells the connect's end): no epoll_ctl(MOD) at hand-over.
            try reactor.register(origin, events: SpliceRelay.events, handler: self)
        } catch let e as SystemError {
            Glibc.close(origin)
            refuse(ConvertError(Self.code(for: e.errno), "connect \(destination): \(e)"))
            return
        } catch {
            Glibc.close(origin)
            refuse(ConvertError(.networkFailure, "connect \(destination): \(error)"))
            return
        }
        state = .connecting(origin: origin, request: request, remainder: remainder)
        reactor.schedule(afterNanos: forwarder.config.connectTimeoutNanos) { [weak self] in
            guard let self, case .connecting(let origin, let request, _) = self.state else { return }
            self.reactor.close(origin)
            self.refuse(ConvertError(.destinationUnreachable, "connect \(request.destination): timed out"))
        }
    }

    /// Hands both sockets to a relay that first sends the success reply and the client's early data.
    private func relay(origin: Int32, request: ConvertRequest, remainder: [UInt8]) {
        state = .done
        let relay = SpliceRelay(
            reactor: reactor, a: client, b: origin, connecting: false, counters: forwarder.counters,
            meter: grant?.meter, mptcp: (a: true, b: false), toB: remainder,
            toA: ConvertServerHandshake.successReply(wantsInfo: request.wantsInfo),
            limitToB: grant?.limitToOrigin, limitToA: grant?.limitToClient)
        let logger = forwarder.logger
        // The raw address, not its string: the string is built only if the debug line is logged.
        let peerAddress = self.peerAddress
        let ticket = grant?.ticket
        grant = nil
        relay.onEnd = { relay, end in
            withExtendedLifetime(ticket) {}
            logger.debug(
                "session ended",
                metadata: [
                    "peer": "\(peerAddress)", "destination": "\(request.destination)", "end": "\(end)",
                    "up": "\(relay.bytesToB)", "down": "\(relay.bytesToA)",
                ])
        }
        logger.debug("relaying", metadata: ["peer": "\(peer)", "destination": "\(request.destination)"])
        relay.start(connectTimeoutNanos: forwarder.config.connectTimeoutNanos)
        forwarder.subflowSweeps[reactor.index]?.add(relay)
    }

    /// RFC 8803 §5.2.6 codes for a failed connect to the destination.
    static func code(for errno: Int32) -> ConvertErrorCode {
        switch errno {
        case ECONNREFUSED, ECONNRESET: return .connectionReset
        case EHOSTUNREACH, ENETUNREACH, EADDRNOTAVAIL, ETIMEDOUT: return .destinationUnreachable
        default: return .networkFailure
        }
    }

    /// Answers a connection that did not authenticate, whatever was wrong with it: the one
    /// Not Authorized reply and a FIN, and the descriptor closed at once. No drain period: the
    /// kernel finishes the close without a descriptor of ours (sends what is queued, resets
    /// anything the client sends later), so each refusal costs one send, one shutdown and one
    /// close, and the same bytes on the wire say nothing about which check failed.
    private func refuseUnauthenticated(_ reason: RefusalReason, _ detail: @autoclosure () -> String) {
        guard case .reading = state else { return }
        state = .done
        noteUnauthenticated(reason, detail())
        let reply = ConvertServerHandshake.unauthenticatedReply
        _ = reply.withUnsafeBytes { send(client, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
        shutdown(client, Int32(SHUT_WR))
        discardInput()
        reactor.close(client)
    }

    /// Gives the pending slot back, counts the refusal for the summary, says why at debug.
    private func noteUnauthenticated(_ reason: RefusalReason, _ detail: @autoclosure () -> String) {
        releasePendingSlot()
        forwarder.refusals.record(reason, from: source)
        forwarder.logger.debug(
            "data connection refused before authentication",
            metadata: ["peer": "\(peer)", "reason": "\(reason)", "detail": "\(detail())"])
    }

    private func releasePendingSlot() {
        guard let ticket = pendingTicket else { return }
        pendingTicket = nil
        forwarder.pending.release(ticket)
    }

    /// Every pending slot was taken and this handshake was the oldest of the heaviest source: its
    /// slot went to a newcomer. It gets the answer every unauthenticated connection gets.
    func evict() {
        refuseUnauthenticated(
            .evicted, "its pending slot went to a newcomer (every slot taken, its source the heaviest)")
    }

    /// Reads and drops what the client has sent already, a bounded amount: close(2) with unread
    /// bytes sends a reset, which could reach the client before the answer it follows.
    private func discardInput() {
        let scratch = reactor.scratch
        for _ in 0..<4 {
            guard case .moved = transfer({ recv(client, scratch.baseAddress!, scratch.count, 0) }) else { return }
        }
    }

    /// For an authenticated client (denied destination, destination unreachable): sends the Error
    /// TLV with its specific code, then closes: write side first so the reply is not lost to a
    /// reset, then the whole connection once the client closes or two seconds pass. The client
    /// proved who it is, and may still be sending the data it put behind its request.
    private func refuse(_ error: ConvertError, logLevel: Logger.Level = .info) {
        switch state {
        case .refusing, .done: return
        default: break
        }
        state = .refusing
        forwarder.logger.log(
            level: logLevel,
            "data connection refused", metadata: ["peer": "\(peer)", "code": "\(error.code.rawValue)", "reason": "\(error)"])
        let reply = ConvertServerHandshake.errorReply(error.code)
        _ = reply.withUnsafeBytes { send(client, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
        shutdown(client, Int32(SHUT_WR))
        reactor.schedule(afterNanos: 2_000_000_000) { [weak self] in self?.finish() }
        drain()
    }

    /// Reads and drops what a refused client still sends, so the close is a FIN, not a reset.
    private func drain() {
        while true {
            switch transfer({ recv(client, reactor.scratch.baseAddress!, reactor.scratch.count, 0) }) {
            case .moved: continue
            case .wouldBlock: return
            case .end, .failed: finish(); return
            }
        }
    }

    private func finish() {
        guard case .refusing = state else { return }
        state = .done
        reactor.close(client)
    }

    /// No whole request within `handshake_timeout`: a stalled client gets the same answer as
    /// every other unauthenticated one.
    private func handshakeTimedOut() {
        guard case .reading = state else { return }
        refuseUnauthenticated(
            .timeout,
            "no whole request within \(Double(forwarder.config.handshakeTimeoutNanos) / 1e9) s "
                + "(\(handshake.bufferedCount) bytes)")
    }
}
