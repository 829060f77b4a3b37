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
public final class ConvertForwarder {
    public struct Configuration {
        public var listen: Endpoint
        public var handshakeTimeoutNanos: UInt64
        public var connectTimeoutNanos: UInt64

        public init(listen: Endpoint, handshakeTimeoutNanos: UInt64, connectTimeoutNanos: UInt64 = 10_000_000_000) {
            self.listen = listen
            self.handshakeTimeoutNanos = handshakeTimeoutNanos
            self.connectTimeoutNanos = connectTimeoutNanos
        }
    }

    /// Why a destination is refused (the deny list), or nil to connect.
    public typealias DestinationPolicy = (Endpoint) -> String?
    /// Whether an authenticated request's subscriber may open one more session, and with what limits.
    public typealias AdmissionPolicy = (ConvertRequest) -> Admission

    let config: Configuration
    let keys: ConvertServerHandshake.KeyLookup
    let policy: DestinationPolicy
    let admission: AdmissionPolicy
    let logger: Logger
    /// One replay cache for all reactors: a replay must be caught whichever core accepts it.
    private let replayLock = Mutex()
    private var replay = ReplayGuard()
    private var listener: Listener?
    public let counters = SessionCounters()

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

    /// Binds the MPTCP listener (dual stack on `::`, Fast Open without cookies) and starts accepting.
    public func start(group: ReactorGroup) throws {
        let listen = config.listen
        let fd = try Sockets.listener(on: listen, mptcp: true, backlog: 4096) { fd in
            // Cookieless Fast Open: the gateway may put the request in the SYN. Safe because the
            // request is authenticated and nothing is answered before it is checked.
            try Sockets.setInt(fd, braid_SOL_TCP, braid_TCP_FASTOPEN, 4096, "TCP_FASTOPEN")
            try Sockets.setInt(fd, braid_SOL_TCP, braid_TCP_FASTOPEN_NO_COOKIE, 1, "TCP_FASTOPEN_NO_COOKIE")
            if !listen.address.isIPv4 {
                try Sockets.setInt(fd, braid_SOL_IPV6, IPV6_V6ONLY, 0, "IPV6_V6ONLY")
            }
        }
        let l = Listener(fd: fd, endpoint: listen)
        listener = l
        l.attach(to: group) { [self] reactor, fd in
            ConvertAcceptor(reactor: reactor, fd: fd, forwarder: self).start()
        }
    }

    /// Closes the listener. Call after the reactor group stopped.
    public func stop() {
        listener?.close()
        listener = nil
    }

    func feed(_ handshake: inout ConvertServerHandshake, _ bytes: UnsafeRawBufferPointer) -> ConvertServerHandshake.Action {
        let now = wallClockMillis()
        return replayLock.withLock { handshake.feed(bytes, nowMillis: now, replay: &replay) }
    }
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

    private let reactor: Reactor
    private let client: Int32
    private let forwarder: ConvertForwarder
    private var handshake: ConvertServerHandshake
    private var state = State.reading
    private let peer: String
    /// The subscriber's limits and session count, from admission until the relay takes them.
    private var grant: SessionGrant?

    init(reactor: Reactor, fd: Int32, forwarder: ConvertForwarder) {
        self.reactor = reactor
        self.client = fd
        self.forwarder = forwarder
        self.handshake = ConvertServerHandshake(lookup: forwarder.keys)
        self.peer = Sockets.remoteEndpoint(fd).map { "\($0)" } ?? "?"
    }

    func start() {
        do {
            try Sockets.setInt(client, Int32(IPPROTO_TCP), TCP_NODELAY, 1, "TCP_NODELAY")
            try reactor.register(client, events: braid_EPOLLIN | braid_EPOLLRDHUP | braid_EPOLLET, handler: self)
        } catch {
            forwarder.logger.warning("cannot serve a data connection", metadata: ["peer": "\(peer)", "error": "\(error)"])
            Glibc.close(client)
            return
        }
        reactor.schedule(afterNanos: forwarder.config.handshakeTimeoutNanos) { [weak self] in self?.handshakeTimedOut() }
        readRequest()  // with Fast Open the request is already here
    }

    func ready(fd: Int32, events: UInt32) {
        switch state {
        case .reading:
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
                    refuse(error)
                case .connect(let request, let remainder):
                    if let reason = forwarder.policy(request.destination) {
                        refuse(ConvertError(.notAuthorized, "destination \(request.destination) denied: \(reason)"))
                    } else {
                        connect(request, remainder: remainder)
                    }
                }
            case .wouldBlock:
                return
            case .end:
                refuse(ConvertError(.malformedMessage, "connection closed inside the request"))
            case .failed(let e):
                forwarder.logger.debug("data connection failed", metadata: ["peer": "\(peer)", "error": "\(e)"])
                state = .done
                reactor.close(client)
            }
        }
    }

    private func connect(_ request: ConvertRequest, remainder: [UInt8]) {
        switch forwarder.admission(request) {
        case .refuse(let error):
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
            try reactor.register(origin, events: braid_EPOLLOUT | braid_EPOLLIN | braid_EPOLLET, handler: self)
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
            reactor: reactor, a: client, b: origin, connecting: false, counters: forwarder.counters, toB: remainder,
            toA: ConvertServerHandshake.successReply(wantsInfo: request.wantsInfo),
            limitToB: grant?.limitToOrigin, limitToA: grant?.limitToClient)
        let logger = forwarder.logger
        let peer = self.peer
        let ticket = grant?.ticket
        grant = nil
        relay.onEnd = { relay, end in
            withExtendedLifetime(ticket) {}
            logger.debug(
                "session ended",
                metadata: [
                    "peer": "\(peer)", "destination": "\(request.destination)", "end": "\(end)",
                    "up": "\(relay.bytesToB)", "down": "\(relay.bytesToA)",
                ])
        }
        logger.debug("relaying", metadata: ["peer": "\(peer)", "destination": "\(request.destination)"])
        relay.start(connectTimeoutNanos: forwarder.config.connectTimeoutNanos)
    }

    /// RFC 8803 §5.2.6 codes for a failed connect to the destination.
    static func code(for errno: Int32) -> ConvertErrorCode {
        switch errno {
        case ECONNREFUSED, ECONNRESET: return .connectionReset
        case EHOSTUNREACH, ENETUNREACH, EADDRNOTAVAIL, ETIMEDOUT: return .destinationUnreachable
        default: return .networkFailure
        }
    }

    /// Sends the Error TLV, then closes: write side first so the reply is not lost to a reset,
    /// then the whole connection once the client closes or two seconds pass.
    private func refuse(_ error: ConvertError) {
        switch state {
        case .refusing, .done: return
        default: break
        }
        state = .refusing
        forwarder.logger.info(
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

    private func handshakeTimedOut() {
        guard case .reading = state else { return }
        forwarder.logger.info("data connection refused", metadata: ["peer": "\(peer)", "reason": "handshake timeout"])
        state = .done
        reactor.setHandler(client, nil)
        Sockets.closeWithReset(client)
    }
}
