import BraidConfig
import BraidCore
import BraidDataPlane
import BraidHTTP
import BraidTLS
import BraidWire
import Logging
import NIOCore
import NIOPosix

/// The concentrator's end of the TLS control channel: an MPTCP listener on `control_port` where
/// each gateway proves who it is with its certificate, is looked up among the subscribers, and
/// gets session keys (rotated before they expire) and its service class. Keys go into the
/// SubscriberBook, where the data reactors find them.
///
/// Anyone may connect, so the port is hardened like the data port: handshakes in flight are
/// limited in total and per source block (over a limit, a connection is reset at accept), refused
/// handshakes are counted into a summary logged every ten seconds instead of a line each, and a
/// peer that stops reading is disconnected once its unsent output passes a bound.
final class ControlServer {
    /// Handshake limits, from `max_control_handshakes` and `max_control_handshakes_per_source`.
    struct Limits {
        var maxHandshakes: Int
        var maxHandshakesPerSource: Int
    }

    /// How often the refusal summary is logged (when there is anything to say).
    static let summaryInterval: TimeAmount = .seconds(10)
    /// How long a gateway has to finish its TLS handshake.
    static let handshakeTimeout: TimeAmount = .seconds(10)
    /// Event loops of the control port, each computing the TLS handshakes of the connections it
    /// accepted: a reconnect storm is bound by this CPU work, and one thread was the limit. Up to
    /// four cores; the data reactors have one each as well, and a storm is short.
    static let threads = min(max(System.coreCount, 1), 4)

    private let group: MultiThreadedEventLoopGroup
    private var channel: Channel?
    private let logger: Logger
    private let open = OpenChannels()
    private let admission: ControlAdmission
    private var pruning: RepeatedTask?
    /// The TLS context new handshakes use and the CRL they were checked with; a reload replaces both.
    private let current: CurrentTLS
    private let book: SubscriberBook
    private var summary: RepeatedTask?
    /// Genuine certificates whose subscriber is not served (unknown, disabled, revoked since the
    /// handshake began), by reason; logged one by one, counted here for status and metrics.
    private let notServed = RefusalTally<String>()

    /// Binds the listener. The TLS context is built by the caller, so a bad file stops the start.
    init(
        listen: Endpoint, tls: TLSContext, book: SubscriberBook, sessionLifetime: UInt32, limits: Limits,
        addresses: @escaping @Sendable () -> [IPAddress] = { [] }, rules: OperatorRuleSets? = nil, logger: Logger
    ) throws {
        self.logger = logger
        self.book = book
        let current = CurrentTLS(tls)
        self.current = current
        group = MultiThreadedEventLoopGroup(numberOfThreads: Self.threads)
        let open = self.open
        let notServed = self.notServed
        let admission = ControlAdmission(
            maxTotal: limits.maxHandshakes, maxPerSource: limits.maxHandshakesPerSource,
            handshakeTimeout: Self.handshakeTimeout)
        self.admission = admission
        let address = try SocketAddress(ipAddress: "\(listen.address)", port: Int(listen.port))
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .enableMPTCP(true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let source = SourceBlock(channel.remoteAddress) else {
                        try channel.pipeline.syncOperations.addHandler(CloseAtAccept())  // gone already
                        return
                    }
                    // Over a limit: nothing is allocated for it, and its reset is counted, not logged.
                    let ticket: PendingSlots<Channel>.Ticket
                    switch admission.admit(source, channel: channel) {
                    case .success(let t):
                        ticket = t
                    case .failure(let refused):
                        logger.debug(
                            "control connection reset at accept",
                            metadata: ["source": "\(source)", "reason": "\(refused.reason)"])
                        try channel.pipeline.syncOperations.addHandler(CloseAtAccept())
                        return
                    }
                    do {
                        var connectionLogger = logger
                        connectionLogger[metadataKey: "peer"] = "\(channel.remoteAddress.map { "\($0)" } ?? "?")"
                        try channel.pipeline.syncOperations.addHandler(UnsentOutputLimit())
                        let handler = try TLSHandler(
                            context: current.context, handshakeTimeout: Self.handshakeTimeout, logger: connectionLogger,
                            refusals: .counted { admission.refusals.record(.tls($0.reason), from: source) })
                        try channel.pipeline.syncOperations.addHandler(handler)
                        // After the TLS handler: its handshake-completed event travels towards the tail.
                        try channel.pipeline.syncOperations.addHandler(
                            ControlHandshakeSlot(admission: admission, ticket: ticket))
                        try channel.pipeline.syncOperations.addHandler(
                            ControlServerHandler(
                                book: book, sessionLifetime: sessionLifetime, open: open, current: current,
                                addresses: addresses, rules: rules, logger: connectionLogger,
                                notServed: { notServed.record($0, from: source) }))
                    } catch {
                        // The slot goes back with a pipeline that could not be built.
                        admission.release(ticket)
                        throw error
                    }
                }
            }
        do {
            channel = try bootstrap.bind(to: address).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw ServiceError("cannot listen for the control channel on \(listen): \(error)")
        }
        // Expired keys (of gateways gone for good) leave the ring once a minute.
        pruning = group.next().scheduleRepeatedTask(initialDelay: .seconds(60), delay: .seconds(60)) { _ in
            let expired = book.prune()
            if !expired.isEmpty { logger.debug("expired session keys dropped", metadata: ["keys": "\(expired)"]) }
        }
        let interval = Self.summaryInterval
        summary = group.next().scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            Self.logRefusals(admission, logger)
        }
    }

    /// One notice line for every connection refused before its handshake finished since the last.
    private static func logRefusals(_ admission: ControlAdmission, _ logger: Logger) {
        guard let summary = admission.refusals.take() else { return }
        logger.notice(
            "control connections refused before authentication",
            metadata: [
                "seconds": "\(summaryInterval.nanoseconds / 1_000_000_000)", "refused": "\(summary.total)",
                "reasons": "\(summary.reasonsText)", "sources": "\(summary.sourcesText)",
                "handshakes": "\(admission.inFlight())", "limit": "\(admission.limit())",
            ])
    }

    /// Control connections refused since start (before or at TLS, and after it when the
    /// certificate's subscriber is not served), by reason.
    func refusalTotals() -> [(reason: String, count: UInt64)] {
        (admission.refusals.totals().map { ("\($0.reason)", $0.count) }
            + notServed.totals().map { ($0.reason, $0.count) }).sorted { $0.reason < $1.reason }
    }

    /// Closes the control channels of subscribers a reload removed or disabled.
    func revoke(_ subscribers: Set<String>) {
        guard !subscribers.isEmpty else { return }
        let open = self.open
        let logger = self.logger
        group.next().execute {
            for (name, _, channel) in open.entries where subscribers.contains(name) {
                logger.notice("control channel closed: subscriber removed or disabled", metadata: ["subscriber": "\(name)"])
                channel.close(promise: nil)
            }
        }
    }

    /// Takes a CRL read again by a reload: new handshakes use `tls` (built with it), and the
    /// channels already up whose certificate it revokes are closed and their keys dropped at
    /// once, since OpenSSL checks a CRL only during a handshake.
    func revoke(certificatesIn crl: RevocationList, tls: TLSContext) {
        current.replace(tls, crl)
        let open = self.open
        let book = self.book
        let logger = self.logger
        group.next().execute {
            // Keys are the subscriber's, not one certificate's: all of them go, and so does every
            // channel of that subscriber. One with a certificate the CRL leaves alone (a re-issued
            // one) reconnects at once and is granted a fresh key, instead of holding keys the
            // concentrator no longer knows until its next rotation.
            let revoked = Set(open.entries.filter { crl.revokes(serial: $0.serial) }.map(\.name))
            for name in revoked { book.retireAll(owner: name) }
            for entry in open.entries where revoked.contains(entry.name) {
                if crl.revokes(serial: entry.serial) {
                    logger.notice(
                        "control channel closed: certificate revoked",
                        metadata: ["subscriber": "\(entry.name)", "serial": "\(entry.serial)"])
                } else {
                    logger.notice(
                        "control channel closed to grant a new key: another certificate of its subscriber was revoked",
                        metadata: ["subscriber": "\(entry.name)", "serial": "\(entry.serial)"])
                }
                entry.channel.close(promise: nil)
            }
        }
    }

    /// Tells every open control channel that classes, subscribers or operator rules changed: each
    /// pushes its gateway the class limits, uplink shares and rules that are now its own, where
    /// they differ from what it last sent, so running gateways follow within a round trip instead
    /// of at their next reconnection.
    func pushRules() {
        let open = self.open
        group.next().execute {
            for entry in open.entries {
                entry.channel.pipeline.fireUserInboundEventTriggered(OperatorRulesChanged())
            }
        }
    }

    func stop() {
        pruning?.cancel()
        summary?.cancel()
        try? channel?.close().wait()
        channel = nil
        try? group.syncShutdownGracefully()
    }
}

/// The control channels with a known subscriber, added and removed on each channel's event loop
/// and read on any of the server's.
final class OpenChannels: @unchecked Sendable {
    private let lock = Mutex()
    private var _entries: [(name: String, serial: String, channel: Channel)] = []

    /// Subscriber, certificate serial, channel: a copy, so closing them may remove them meanwhile.
    var entries: [(name: String, serial: String, channel: Channel)] { lock.withLock { _entries } }

    func add(_ name: String, serial: String, _ channel: Channel) {
        lock.withLock { _entries.append((name, serial, channel)) }
    }

    func remove(_ channel: Channel) { lock.withLock { _entries.removeAll { $0.channel === channel } } }
}

/// The TLS context for new control connections and the CRL it holds, swapped whole by a reload.
/// A handshake that began with the old context is checked against the new CRL when it completes.
final class CurrentTLS: @unchecked Sendable {
    private let lock = Mutex()
    private var _context: TLSContext
    private var _crl: RevocationList?

    init(_ context: TLSContext) { _context = context }

    var context: TLSContext { lock.withLock { _context } }
    var crl: RevocationList? { lock.withLock { _crl } }

    func replace(_ context: TLSContext, _ crl: RevocationList) {
        lock.withLock {
            _context = context
            _crl = crl
        }
    }
}

/// One gateway's control channel, after TLS: checks the subscriber named by the certificate,
/// then runs a ConcentratorControlSession and carries out its actions.
final class ControlServerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let book: SubscriberBook
    private let open: OpenChannels
    private let sessionLifetime: UInt32
    private var logger: Logger
    private var session: ConcentratorControlSession?
    private var subscriber: String?
    private var timer: Scheduled<Void>?
    private var keys: [UInt32] = []
    /// The class and shares last given to the session, so a reload pushes only what changed.
    private var pushed: (info: ControlMessage.ClassInfo?, shares: [UplinkShare]) = (nil, [])

    private let current: CurrentTLS
    /// Counts a refusal of a genuine certificate's subscriber, by reason.
    private let notServed: (String) -> Void

    /// The addresses announced to the gateway, read at each channel's start.
    private let addresses: () -> [IPAddress]
    /// The operator's rules by class; nil pushes none (the session sends no `operatorRules`).
    private let rules: OperatorRuleSets?

    init(
        book: SubscriberBook, sessionLifetime: UInt32, open: OpenChannels, current: CurrentTLS,
        addresses: @escaping () -> [IPAddress], rules: OperatorRuleSets? = nil, logger: Logger,
        notServed: @escaping (String) -> Void = { _ in }
    ) {
        self.rules = rules
        self.notServed = notServed
        self.addresses = addresses
        self.book = book
        self.open = open
        self.current = current
        self.sessionLifetime = sessionLifetime
        self.logger = logger
    }

    private static func now() -> UInt64 { SubscriberBook.nowMillis() }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is OperatorRulesChanged {
            classOrRulesChanged(context)
            return
        }
        guard let done = event as? TLSHandshakeCompleted else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        let name = done.peerCommonName
        logger[metadataKey: "subscriber"] = "\(name)"
        // A handshake that began before a reload brought a new CRL was checked with the old one.
        let verdict: SubscriberBook.Verdict =
            current.crl?.revokes(serial: done.peerSerial) == true
            ? .refused("certificate revoked") : book.check(commonName: name)
        switch verdict {
        case .refused(let why):
            // Refused right after TLS: the certificate is genuine but the operator does not serve it.
            logger.notice("control channel refused", metadata: ["reason": "\(why)"])
            notServed(why)
            let frame = ControlMessage.errorFrame(.notAuthorized, why)
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: frame))).whenComplete { _ in
                context.close(promise: nil)
            }
        case .welcome(let s, let serviceClass):
            subscriber = s.name
            open.add(s.name, serial: done.peerSerial, context.channel)
            book.channelOpened(
                ObjectIdentifier(self), subscriber: s.name, from: Self.peerText(context.channel.remoteAddress))
            let (info, shares) = pushable(serviceClass)
            pushed = (info, shares)
            let book = self.book
            var configuration = ConcentratorControlSession.Configuration(
                keyLifetimeSeconds: sessionLifetime, serviceClass: info)
            configuration.addresses = addresses()
            configuration.uplinkShares = shares
            configuration.operatorRules = rules?.rules(of: s.serviceClass)
            var session = ConcentratorControlSession(
                configuration: configuration,
                keys: SystemSessionKeySource(isInUse: { book.isInUse($0) }))
            let actions = session.start(nowMillis: Self.now())
            self.session = session
            logger.info("control channel up", metadata: ["class": "\(s.serviceClass)"])
            perform(actions, context)
        }
    }

    /// The class message and uplink shares of `serviceClass`, as far as they can be encoded.
    private func pushable(_ serviceClass: ServiceClass?) -> (ControlMessage.ClassInfo?, [UplinkShare]) {
        guard let c = serviceClass else { return (nil, []) }
        let info = ControlMessage.ClassInfo(
            name: c.name, rateDownBitsPerSecond: c.rateDown, rateUpBitsPerSecond: c.rateUp,
            maxSessions: c.maxSessions)
        // `braid check` refuses what the frame cannot carry; a class that still does not
        // encode is not pushed (its limits apply here all the same) rather than stopping
        // the session, which must only ever send what it can encode.
        do {
            _ = try ControlMessage.classInfo(info).encode()
        } catch {
            logger.error("service class not pushed to the gateway", metadata: ["error": "\(error)"])
            return (nil, [])
        }
        do {
            _ = try ControlMessage.uplinkShares(c.uplinkShares).encode()
            return (info, c.uplinkShares)
        } catch {
            logger.error("uplink shares not pushed to the gateway", metadata: ["error": "\(error)"])
            return (info, [])
        }
    }

    /// A reload or the store changed classes, subscribers or rules: the subscriber's class is
    /// looked up again and its limits, uplink shares and rules pushed when they differ from what
    /// the gateway has. A subscriber no longer welcome is not pushed anything: its channel is
    /// being closed.
    private func classOrRulesChanged(_ context: ChannelHandlerContext) {
        guard session != nil, let subscriber,
            case .welcome(let s, let serviceClass) = book.check(commonName: subscriber)
        else { return }
        var actions: [ControlAction] = []
        let (info, shares) = pushable(serviceClass)
        if let info, info != pushed.info || shares != pushed.shares {
            pushed = (info, shares)
            logger.info("class pushed to the gateway", metadata: ["class": "\(info.name)", "uplink_shares": "\(shares)"])
            actions += session!.updateClass(info, uplinkShares: shares)
        }
        if let rules {
            let set = rules.rules(of: s.serviceClass)
            let pushed = session!.updateOperatorRules(set)
            if !pushed.isEmpty {
                logger.info("operator rules pushed", metadata: ["class": "\(s.serviceClass)", "rules": "\(set.count)"])
            }
            actions += pushed
        }
        if !actions.isEmpty { perform(actions, context) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard session != nil else { return }  // nothing is read before the subscriber is known
        var buffer = unwrapInboundIn(data)
        let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        let actions = session!.receive(bytes, nowMillis: Self.now())
        perform(actions, context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        open.remove(context.channel)
        book.channelClosed(ObjectIdentifier(self))
        if session != nil, session!.closeReason == nil {
            perform(session!.connectionClosed(nowMillis: Self.now()), context)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // TLS refusals are counted by the TLS handler with their reason; others are logged here.
        if let overflow = error as? UnsentOutputOverflow {
            // A subscriber's gateway (or whoever holds its certificate) misbehaving: worth a line, once.
            logger.notice("control channel closed: \(overflow)")
        } else if !(error is TLSError) {
            logger.info("control channel error", metadata: ["error": "\(error)"])
        }
        context.close(promise: nil)
    }

    private func perform(_ actions: [ControlAction], _ context: ChannelHandlerContext) {
        for action in actions {
            switch action {
            case .send(let frame):
                context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: frame)), promise: nil)
            case .installKey(let id, let key, let notAfter):
                do {
                    let evicted = try book.install(id: id, key: key, notAfterMillis: notAfter, owner: subscriber ?? "")
                    keys.append(id)
                    book.channelGranted(ObjectIdentifier(self), key: id)
                    logger.debug("session key granted", metadata: ["key": "\(id)", "evicted": "\(evicted)"])
                } catch {
                    logger.warning("cannot install a session key; closing", metadata: ["error": "\(error)"])
                    context.close(promise: nil)
                    return
                }
            case .retireKey(let id):
                book.retire(id: id)
                keys.removeAll { $0 == id }
            case .applyClass, .learnAddresses, .applyUplinkShares, .applyOperatorRules:
                break  // gateway-side actions
            case .close(let reason):
                logger.info("control channel closed", metadata: ["reason": "\(reason)"])
                context.flush()
                context.close(promise: nil)
                return
            }
        }
        context.flush()
        scheduleTick(context)
    }

    /// The gateway's address as status shows it: `198.18.1.1:40000`, `[2001:db8::1]:40000`; an
    /// IPv4 peer on the dual-stack listener as IPv4, not `::ffff:`-mapped.
    static func peerText(_ address: SocketAddress?) -> String {
        guard let address, let text = address.ipAddress, let port = address.port, var ip = IPAddress(text) else {
            return "?"
        }
        if case .v6(let b) = ip, let v4 = IPAddress(mappedIPv6Bytes: b) { ip = v4 }
        return "\(Endpoint(address: ip, port: UInt16(truncatingIfNeeded: port)))"
    }

    private func scheduleTick(_ context: ChannelHandlerContext) {
        timer?.cancel()
        guard let next = session?.nextTickMillis else { return }
        let now = Self.now()
        let delay = next > now ? next - now : 0
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: .milliseconds(Int64(delay))) {
            let (handler, context) = loopBound.value
            guard handler.session != nil else { return }
            handler.perform(handler.session!.tick(nowMillis: Self.now()), context)
        }
    }
}
