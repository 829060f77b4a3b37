import BraidConfig
import BraidCore
import BraidDataPlane
import BraidTLS
import BraidWire
import Logging
import NIOCore
import NIOPosix

/// The key data connections are sealed with: the newest session key the concentrator granted,
/// else the pre-shared key (the simple mode, and the fallback until the first grant). Written by
/// the control channel's thread, read by every data reactor at each connection.
final class DataKeys: @unchecked Sendable {
    private let lock = Mutex()
    private var session: (authenticator: ConvertAuthenticator, notAfter: UInt64)?
    private let preshared: ConvertAuthenticator?
    private(set) var serviceClass: ControlMessage.ClassInfo? {
        get { lock.withLock { _serviceClass } }
        set { lock.withLock { _serviceClass = newValue } }
    }
    private var _serviceClass: ControlMessage.ClassInfo?
    /// The concentrator's name every MAC is bound to (`server_name`), so a request cannot be
    /// replayed to another concentrator that shares the key; nil binds each MAC to the
    /// concentrator address the connection dials (what the concentrator takes by default), so a
    /// session started over IPv6 is bound to the IPv6 address.
    private let identity: String?

    init(preshared: [UInt8]?, identity: String?) {
        self.identity = identity
        self.preshared = preshared.map { ConvertAuthenticator(key: $0, identity: identity ?? "") }
    }

    static func nowMillis() -> UInt64 { monotonicNanos() / 1_000_000 }

    func install(id: UInt32, key: [UInt8], notAfterMillis: UInt64) {
        let authenticator = ConvertAuthenticator(key: key, keyID: id, identity: identity ?? "")
        lock.withLock { session = (authenticator, notAfterMillis) }
    }

    func retire(id: UInt32) {
        lock.withLock { if session?.authenticator.keyID == id { session = nil } }
    }

    func setClass(_ info: ControlMessage.ClassInfo) { serviceClass = info }

    /// The authenticator for a new data connection to `server`, or nil when there is no usable key.
    func current(server: IPAddress? = nil) -> ConvertAuthenticator? {
        let now = Self.nowMillis()
        let chosen = lock.withLock { () -> ConvertAuthenticator? in
            if let s = session, s.notAfter > now { return s.authenticator }
            return preshared
        }
        guard let chosen, identity == nil, let server else { return chosen }
        return ConvertAuthenticator(key: chosen.key, keyID: chosen.keyID, identity: server.description)
    }

    /// Key id in use (0: the pre-shared key), for status.
    var keyID: UInt32? { current()?.keyID }
}

/// The gateway's end of the TLS control channel: one connection over MPTCP to the concentrator's
/// control port, mutual certificates, the concentrator's name checked; keeps it up for ever,
/// reconnecting with exponential backoff and full jitter. Data connections never wait for it:
/// they use the newest key granted, which stays valid until it expires, so sessions are opened
/// and relayed while the channel reconnects.
final class ControlClient: @unchecked Sendable {
    private let group: MultiThreadedEventLoopGroup
    private let tls: TLSContext
    /// The control port; the address and the source are `target`'s at each connection attempt.
    private let port: UInt16
    private let keys: DataKeys
    private let target: () -> TransparentForwarder.FirstSubflow?
    private let timers: ControlTimers
    private var logger: Logger
    private var backoff = Backoff.controlChannel
    private var channel: Channel?
    private var stopped = false
    /// Whether the channel is up with a granted key, and why it last went down: written on the
    /// event loop, read by `braid status` on the control reactor.
    private let stateLock = Mutex()
    private var _established = false
    private var _lastError: String?
    private var _generation: UInt64 = 0
    var established: Bool { stateLock.withLock { _established } }
    var lastError: String? { stateLock.withLock { _lastError } }
    /// Counts the times the channel came up: a poller that sees it change knows the channel went
    /// down and up again in between, however briefly.
    var generation: UInt64 { stateLock.withLock { _generation } }
    /// The concentrator's keys: the newest session key it granted, its class.
    var dataKeys: DataKeys { keys }

    /// `keepaliveSeconds`: a ping that often; the concentrator is dead after three unanswered.
    /// `target` answers, at each attempt, the concentrator address to dial and the source to
    /// dial it from (nil: no address known yet, try again later); `name` is for the logs.
    init(
        name: String, port: UInt16, tls: TLSContext, keys: DataKeys, keepaliveSeconds: UInt32,
        target: @escaping () -> TransparentForwarder.FirstSubflow?, logger: Logger
    ) {
        timers = ControlTimers(
            pingIntervalMillis: UInt64(keepaliveSeconds) * 1000, deadAfterMillis: UInt64(keepaliveSeconds) * 3000)
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.port = port
        self.tls = tls
        self.keys = keys
        self.target = target
        self.logger = logger
        self.logger[metadataKey: "concentrator"] = "\(name)"
    }

    private var loop: EventLoop { group.next() }

    func start() {
        loop.execute { self.connect() }
    }

    func stop() {
        let loop = self.loop
        try? loop.submit {
            self.stopped = true
            self.channel?.close(promise: nil)
        }.wait()
        try? group.syncShutdownGracefully()
    }

    /// Runs on the event loop.
    private func connect() {
        guard !stopped else { return }
        let tls = self.tls
        let logger = self.logger
        let timers = self.timers
        var bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.seconds(5))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .enableMPTCP(true)
            .channelInitializer { [weak self] channel in
                channel.eventLoop.makeCompletedFuture {
                    // A concentrator that stops reading (hostile, or broken) must not grow our
                    // memory with the pongs and pings it never takes: past the bound, reconnect.
                    try channel.pipeline.syncOperations.addHandler(UnsentOutputLimit())
                    try channel.pipeline.syncOperations.addHandler(
                        try TLSHandler(context: tls, handshakeTimeout: .seconds(10), logger: logger))
                    try channel.pipeline.syncOperations.addHandler(ControlClientHandler(client: self, timers: timers))
                }
            }
        // The first subflow leaves from a healthy uplink, as the data connections' do, to the
        // concentrator address of that uplink's family.
        // With concentrator addresses of both families, both as IPv6 (IPv4 v4-mapped), so the
        // socket is AF_INET6 and subflows of either family can join it (an AF_INET MPTCP socket
        // takes IPv4 subflows only).
        guard let first = target() else {
            lost("no address known for the concentrator")
            return
        }
        let server = first.server
        let form: (IPAddress) -> IPAddress = first.bothFamilies ? Self.v6 : { $0 }
        if let source = first.source, source.isIPv4 == server.isIPv4,
            let local = try? SocketAddress(ipAddress: "\(form(source))", port: 0)
        {
            bootstrap = bootstrap.bind(to: local)
        }
        do {
            let address = try SocketAddress(ipAddress: "\(form(server))", port: Int(port))
            bootstrap.connect(to: address).whenComplete { result in
                switch result {
                case .success(let channel):
                    self.channel = channel
                case .failure(let error):
                    self.lost("connect: \(error)")
                }
            }
        } catch {
            lost("\(error)")
        }
    }

    /// `a` as an IPv6 address: IPv4 as v4-mapped.
    private static func v6(_ a: IPAddress) -> IPAddress { IPAddress(bytes: a.mappedIPv6Bytes) ?? a }

    /// The channel is gone (or never came): try again after a jittered, growing delay.
    fileprivate func lost(_ why: String) {
        stateLock.withLock {
            _established = false
            _lastError = why
        }
        channel = nil
        guard !stopped else { return }
        var random = SystemRandomNumberGenerator()
        let delay = backoff.next(using: &random)
        logger.info("control channel down; reconnecting", metadata: ["reason": "\(why)", "in_ms": "\(delay)"])
        loop.scheduleTask(in: .milliseconds(Int64(delay))) { self.connect() }
    }

    fileprivate func granted(id: UInt32, key: [UInt8], notAfterMillis: UInt64) {
        keys.install(id: id, key: key, notAfterMillis: notAfterMillis)
        let wasUp = stateLock.withLock { () -> Bool in
            defer {
                if !_established { _generation &+= 1 }
                _established = true
                _lastError = nil
            }
            return _established
        }
        if !wasUp { logger.notice("control channel up; session key granted", metadata: ["key": "\(id)"]) }
        backoff.reset()
    }

    fileprivate func retired(id: UInt32) { keys.retire(id: id) }

    /// Called with the concentrator's addresses each time it announces them (on the channel's
    /// event loop); set before `start`.
    var onAddresses: (([IPAddress]) -> Void)?

    fileprivate func learned(_ list: [IPAddress]) {
        let usable = ConcentratorAddresses.dialable(list)
        logger.info("concentrator announced its addresses", metadata: ["addresses": "\(usable)"])
        onAddresses?(usable)
    }

    /// Called with the uplink shares of the gateway's class each time the concentrator pushes
    /// them (on the channel's event loop); set before `start`.
    var onUplinkShares: (([UplinkShare]) -> Void)?

    fileprivate func sharesApplied(_ list: [UplinkShare]) {
        logger.info("uplink shares of the class", metadata: ["shares": "\(list.map(\.description))"])
        onUplinkShares?(list)
    }

    /// Called with the operator's rules for the gateway's class each time the concentrator pushes
    /// them (on the channel's event loop); set before `start`.
    var onOperatorRules: (([ControlMessage.OperatorRule]) -> Void)?

    fileprivate func received(_ rules: [ControlMessage.OperatorRule]) {
        logger.info("operator rules received", metadata: ["rules": "\(rules.map(\.name))"])
        onOperatorRules?(rules)
    }

    fileprivate func applied(_ info: ControlMessage.ClassInfo) {
        keys.setClass(info)
        logger.info(
            "service class", metadata: [
                "class": "\(info.name)", "rate_down": "\(info.rateDownBitsPerSecond)",
                "rate_up": "\(info.rateUpBitsPerSecond)", "max_sessions": "\(info.maxSessions)",
            ])
    }
}

/// One connection of the control channel, after TLS: a GatewayControlSession and its actions.
final class ControlClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private weak var client: ControlClient?
    private var session: GatewayControlSession
    private var started = false
    private var timer: Scheduled<Void>?
    private var reason: String?

    init(client: ControlClient?, timers: ControlTimers) {
        self.client = client
        session = GatewayControlSession(configuration: .init(software: "braid", timers: timers))
    }

    private static func now() -> UInt64 { DataKeys.nowMillis() }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is TLSHandshakeCompleted else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        // In TLS 1.3 the client finishes before the server has judged its certificate: the
        // channel counts as up only when the first grant arrives.
        started = true
        perform(session.start(nowMillis: Self.now()), context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard started else { return }
        var buffer = unwrapInboundIn(data)
        let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        perform(session.receive(bytes, nowMillis: Self.now()), context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        if started, session.closeReason == nil {
            perform(session.connectionClosed(nowMillis: Self.now()), context)
        }
        client?.lost(reason ?? session.closeReason.map { "\($0)" } ?? "connection closed")
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        reason = "\(error)"
        context.close(promise: nil)
    }

    private func perform(_ actions: [ControlAction], _ context: ChannelHandlerContext) {
        for action in actions {
            switch action {
            case .send(let frame):
                context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: frame)), promise: nil)
            case .installKey(let id, let key, let notAfter):
                client?.granted(id: id, key: key, notAfterMillis: notAfter)
            case .retireKey(let id):
                client?.retired(id: id)
            case .applyClass(let info):
                client?.applied(info)
            case .learnAddresses(let list):
                client?.learned(list)
            case .applyUplinkShares(let list):
                client?.sharesApplied(list)
            case .applyOperatorRules(let rules):
                client?.received(rules)
            case .close(let why):
                reason = "\(why)"
                context.flush()
                context.close(promise: nil)
                return
            }
        }
        context.flush()
        timer?.cancel()
        guard let next = session.nextTickMillis else { return }
        let now = Self.now()
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: .milliseconds(Int64(next > now ? next - now : 0))) {
            let (handler, context) = loopBound.value
            handler.perform(handler.session.tick(nowMillis: Self.now()), context)
        }
    }
}
