import BraidCore
import BraidWire
import CBraidLinux
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Carries intercepted TCP connections over MPTCP: accepts what nftables TPROXY hands to the
/// transparent listeners, opens an MPTCP connection to the server whose first bytes are the
/// Convert request for the original destination, and relays.
///
/// The LAN client's data follows the request at once, without waiting for the reply: a
/// connection through the gateway costs the same round trips as a direct one (the MPTCP handshake
/// stands in for the LAN client's own). The reply is read off the stream before any server byte
/// reaches the client; a refusal resets the LAN connection.
public final class TransparentForwarder {
    public struct Configuration {
        public var server: Endpoint
        public var listenerPort: UInt16
        /// TCP_FASTOPEN_CONNECT: the request rides in the SYN. See the gateway's `fastopen` option.
        public var fastOpen: Bool
        public var connectTimeoutNanos: UInt64
        /// The kernel congestion control of the connections' subflows (the gateway's
        /// `congestion_control`, checked against the kernel at start); nil keeps the system's.
        public var congestionControl: String?

        public init(
            server: Endpoint, listenerPort: UInt16, fastOpen: Bool, connectTimeoutNanos: UInt64 = 10_000_000_000,
            congestionControl: String? = nil
        ) {
            self.server = server
            self.listenerPort = listenerPort
            self.fastOpen = fastOpen
            self.connectTimeoutNanos = connectTimeoutNanos
            self.congestionControl = congestionControl
        }
    }

    /// Builds the authenticated Convert request for a destination, to be sent to `server` (the
    /// concentrator address dialled, which the MAC may be bound to).
    public typealias RequestBuilder = (_ destination: Endpoint, _ server: IPAddress) throws -> [UInt8]

    /// Where a new connection's first subflow goes: the concentrator address of the family of the
    /// uplink it starts on, and that uplink's address (nil lets the routing table choose).
    public struct FirstSubflow: Equatable, Sendable {
        public var source: IPAddress?
        public var server: IPAddress
        /// The concentrator has addresses of both families: subflows of either may join.
        public var bothFamilies: Bool

        public init(source: IPAddress?, server: IPAddress, bothFamilies: Bool = false) {
            self.source = source
            self.server = server
            self.bothFamilies = bothFamilies
        }
    }

    /// The first subflow of a new connection, or nil to dial `Configuration.server` from
    /// whatever address the routing table chooses.
    public typealias SourceSelector = () -> FirstSubflow?

    private let config: Configuration
    private let makeRequest: RequestBuilder
    private let selectSource: SourceSelector
    private let logger: Logger
    private var listeners: [Listener] = []
    public let counters = SessionCounters()
    /// Bytes relayed by every session, up (LAN to concentrator) and down.
    public let bytes = ByteMeter()
    /// The gateway's own addresses, for `SelfDestination`.
    private let localAddresses = LocalAddresses()
    /// Connections refused as addressed to the gateway itself, since the last warning about them.
    private let refusedLock = Mutex()
    private var refusedSelf = 0
    private var lastRefusalWarning: UInt64 = 0

    public init(
        config: Configuration, logger: Logger, selectSource: @escaping SourceSelector = { nil },
        makeRequest: @escaping RequestBuilder
    ) {
        self.config = config
        self.logger = logger
        self.selectSource = selectSource
        self.makeRequest = makeRequest
    }

    /// Binds the IPv4 and IPv6 transparent listeners and starts accepting on every reactor.
    public func start(group: ReactorGroup) throws {
        // TCP_NODELAY on the listeners: accepted connections inherit it, so the accept path does
        // not pay a setsockopt for it.
        let v4 = try Sockets.listener(on: Endpoint(address: .v4(0), port: config.listenerPort), mptcp: false, backlog: 4096) {
            try Sockets.setInt($0, braid_SOL_IP, braid_IP_TRANSPARENT, 1, "IP_TRANSPARENT")
            try Sockets.setInt($0, Int32(IPPROTO_TCP), TCP_NODELAY, 1, "TCP_NODELAY")
        }
        listeners.append(Listener(fd: v4, endpoint: Endpoint(address: .v4(0), port: config.listenerPort)))
        let any6 = Endpoint(address: .v6([UInt8](repeating: 0, count: 16)), port: config.listenerPort)
        let v6 = try Sockets.listener(on: any6, mptcp: false, backlog: 4096) {
            try Sockets.setInt($0, braid_SOL_IPV6, braid_IPV6_TRANSPARENT, 1, "IPV6_TRANSPARENT")
            try Sockets.setInt($0, braid_SOL_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY")
            try Sockets.setInt($0, Int32(IPPROTO_TCP), TCP_NODELAY, 1, "TCP_NODELAY")
        }
        listeners.append(Listener(fd: v6, endpoint: any6))
        for l in listeners {
            l.attach(to: group) { [self] reactor, fd, peer in accept(reactor: reactor, lan: fd, peer: peer) }
        }
    }

    /// Closes the listeners. Call after the reactor group stopped.
    public func stop() {
        for l in listeners { l.close() }
        listeners = []
    }

    /// What `makeRequest` throws while the gateway cannot carry a connection yet: no session key
    /// while the control channel comes up (at start, after the concentrator restarted). The LAN
    /// connection waits for it, up to `readyWaitNanos`, instead of being reset at once.
    public struct NotReady: Error, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// How long a LAN connection waits for the gateway to be ready, and how often it looks. A
    /// client's connection made while a restarted gateway gets its key (a SYN it retried while the
    /// gateway was down, a browser's next request) completes instead of being reset. The control
    /// channel's reconnect backoff grows while the concentrator is away (to 30 s at most,
    /// `Backoff.controlChannel`), so the key can come that long after the concentrator is back:
    /// a connection waits as long, then is reset.
    static let readyWaitNanos: UInt64 = 30_000_000_000
    static let readyPollNanos: UInt64 = 100_000_000

    /// `since`: when a connection that waits for the gateway to be ready first came here.
    private func accept(reactor: Reactor, lan: Int32, peer client: PeerAddress, since: UInt64? = nil) {
        guard let destination = Sockets.localEndpoint(lan) else {
            Sockets.closeWithReset(lan)
            return
        }
        if let why = SelfDestination.check(destination, localAddresses: localAddresses.current()) {
            refuseSelf(why, client: client)
            Sockets.closeWithReset(lan)
            return
        }
        let request: [UInt8]
        var upstream: Int32
        let connected: Bool
        let first = selectSource()
        // An IPv6-only uplink that is the only healthy one must dial the concentrator's IPv6 address.
        let server = Endpoint(address: first?.server ?? config.server.address, port: config.server.port)
        var source = first?.source
        var dialled = server
        do {
            request = try makeRequest(destination, server.address)
            // An MPTCP socket of family AF_INET can only ever have IPv4 subflows (the kernel's
            // mptcp_pm_addr_families_match), so when the concentrator has addresses of both
            // families the connection is an AF_INET6 socket, dialling an IPv4 concentrator by its
            // v4-mapped address: uplinks of either family can then join. Otherwise (or without
            // IPv6 in the kernel) a socket of the server's family, as the kernel shows it plainly.
            do {
                guard first?.bothFamilies == true || !server.address.isIPv4 else {
                    throw SystemError("socket(AF_INET6)", errno: EAFNOSUPPORT)
                }
                upstream = try Sockets.stream(family: AF_INET6, mptcp: true)
                dialled = Endpoint(address: IPAddress(bytes: server.address.mappedIPv6Bytes)!, port: server.port)
                source = source.flatMap { IPAddress(bytes: $0.mappedIPv6Bytes) }
            } catch let e as SystemError where e.errno == EAFNOSUPPORT && server.address.isIPv4 {
                upstream = try Sockets.stream(family: AF_INET, mptcp: true)
            }
        } catch let notReady as NotReady where since.map({ monotonicNanos() &- $0 < Self.readyWaitNanos }) ?? true {
            // Nothing is allocated for it but its accepted socket, which holds what the client sent.
            let started = since ?? monotonicNanos()
            if since == nil {
                logger.debug("connection waits", metadata: ["client": "\(client)", "why": "\(notReady)"])
            }
            reactor.schedule(afterNanos: Self.readyPollNanos) { [weak self] in
                guard let self else { return Sockets.closeWithReset(lan) }
                self.accept(reactor: reactor, lan: lan, peer: client, since: started)
            }
            return
        } catch {
            logger.warning("cannot open a data connection", metadata: ["client": "\(client)", "error": "\(error)"])
            Sockets.closeWithReset(lan)
            return
        }
        do {
            try Sockets.setInt(upstream, Int32(IPPROTO_TCP), TCP_NODELAY, 1, "TCP_NODELAY")
            if let cc = config.congestionControl {
                // Before connect: the first subflow starts with it, later ones take it from the
                // socket. Checked at start; were it refused now, the connection is better served
                // with the system's default than reset.
                try? Sockets.setCongestionControl(upstream, cc)
            }
            if config.fastOpen {
                // With a cookie: the concentrator accepts data in the SYN only with one. The first
                // connection to it from a source asks for the cookie (its request follows the
                // handshake); the kernel caches the cookie and later SYNs carry the request.
                try Sockets.setInt(upstream, braid_SOL_TCP, braid_TCP_FASTOPEN_CONNECT, 1, "TCP_FASTOPEN_CONNECT")
            }
            if let source, first?.source?.isIPv4 == server.address.isIPv4 {
                // A failed bind (the address just went away) leaves the choice to the routing table.
                try? Sockets.bind(upstream, to: Endpoint(address: source, port: 0))
            }
            connected = try Sockets.connect(upstream, to: dialled)
        } catch {
            logger.warning(
                "cannot reach the concentrator",
                metadata: ["client": "\(client)", "destination": "\(destination)", "error": "\(error)"])
            Sockets.closeWithReset(lan)
            Glibc.close(upstream)
            return
        }

        var reply = ConvertClientHandshake()
        let logger = self.logger
        let relay = SpliceRelay(
            reactor: reactor, a: lan, b: upstream, connecting: !connected, counters: counters, meter: bytes,
            mptcp: (a: false, b: true), toB: request
        ) { bytes in
            switch reply.feed(bytes) {
            case .needMore:
                return .needMore
            case .established(_, let remainder):
                return .done(remainder: remainder)
            case .refused(let error):
                logger.info(
                    "connection refused upstream",
                    metadata: ["client": "\(client)", "destination": "\(destination)", "reason": "\(error)"])
                return .refuse("refused upstream: \(error)")
            }
        }
        relay.onEnd = { relay, end in
            if case .aborted(let why) = end, !relay.isConnected {
                logger.warning(
                    "cannot reach the concentrator",
                    metadata: ["client": "\(client)", "destination": "\(destination)", "error": "\(why)"])
            } else {
                logger.debug(
                    "session ended",
                    metadata: [
                        "client": "\(client)", "destination": "\(destination)", "end": "\(end)",
                        "up": "\(relay.bytesToB)", "down": "\(relay.bytesToA)",
                    ])
            }
        }
        relay.start(connectTimeoutNanos: config.connectTimeoutNanos)
    }

    /// Counts a connection refused as addressed to the gateway itself; warns at most every ten
    /// seconds with the count, since a scan from the internet would otherwise write a line per port.
    private func refuseSelf(_ why: SelfDestination, client: PeerAddress) {
        logger.debug("connection to the gateway itself refused", metadata: ["client": "\(client)", "reason": "\(why)"])
        let now = monotonicNanos()
        let count: Int? = refusedLock.withLock {
            refusedSelf += 1
            guard lastRefusalWarning == 0 || now &- lastRefusalWarning >= 10_000_000_000 else { return nil }
            lastRefusalWarning = now
            defer { refusedSelf = 0 }
            return refusedSelf
        }
        if let count {
            logger.warning(
                "connections on the transparent listener refused: not handed over by the interception rule",
                metadata: ["refused": "\(count)", "last_client": "\(client)", "reason": "\(why)"])
        }
    }
}

/// Session and byte counts of a forwarder, shared by its reactors.
public final class SessionCounters {
    private let lock = Mutex()
    private var _active = 0
    private var _total = 0

    public init() {}

    func opened() {
        lock.withLock {
            _active += 1
            _total += 1
        }
    }

    func closed() {
        lock.withLock { _active -= 1 }
    }

    /// Sessions open now and sessions since start.
    public var snapshot: (active: Int, total: Int) {
        lock.withLock { (_active, _total) }
    }
}
