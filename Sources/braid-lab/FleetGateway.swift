import BraidCore
import BraidTLS
import BraidWire
import Glibc
import Logging
import NIOCore
import NIOPosix

/// Where a simulated gateway finds its concentrator and what it sends through it.
struct FleetTarget {
    /// The concentrator's control port.
    var control: NIOCore.SocketAddress
    /// The concentrator's data port.
    var data: NIOCore.SocketAddress
    /// The concentrator's name: SNI, certificate check, and the identity data MACs are bound to,
    /// as a gateway with `option server_name`.
    var serverName: String
    /// Where the data connections go, through the concentrator.
    var origin: Endpoint
    var timers: ControlTimers
    /// Rude: reconnect after this many ms whatever happened, instead of the gateway's backoff (a
    /// fleet whose firmware does not back off). Nil: `Backoff.controlChannel`.
    var retryMillis: UInt64? = nil
    /// What the control channel receives is held this long before TLS sees it (`InboundDelay`).
    var delayMillis: Int64 = 0
}

/// One simulated gateway: its own certificate, source address and control channel, reconnecting
/// with the gateway's own backoff and full jitter (`Backoff.controlChannel`) exactly as
/// `ControlClient` does; and data connections through the concentrator's Convert exchange,
/// sealed with the newest key it was granted. Everything runs on its one event loop.
final class SimulatedGateway {
    let index: Int
    let name: String
    let loop: EventLoop
    private let tls: TLSContext
    private let source: NIOCore.SocketAddress?
    private let target: FleetTarget
    private let tally: FleetTally
    private let logger: Logger
    private var backoff = Backoff.controlChannel
    private var random = SystemRandomNumberGenerator()
    private var control: Channel?
    /// The newest key granted, as the gateway's `DataKeys` keeps it.
    private var authenticator: ConvertAuthenticator?
    private var held: [Channel] = []
    private var stopped = false

    init(
        index: Int, name: String, loop: EventLoop, tls: TLSContext, source: NIOCore.SocketAddress?,
        target: FleetTarget, tally: FleetTally, logger: Logger
    ) {
        self.index = index
        self.name = name
        self.loop = loop
        self.tls = tls
        self.source = source
        self.target = target
        self.tally = tally
        self.logger = logger
    }

    /// Opens the control channel (on the gateway's loop).
    func start() { loop.execute { self.connect() } }

    private func connect() {
        guard !stopped else { return }
        tally.attempted()
        let tls = self.tls
        let logger = self.logger
        let timers = target.timers
        var bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.seconds(5))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .enableMPTCP(true)
            .channelInitializer { [delay = target.delayMillis] channel in
                channel.eventLoop.makeCompletedFuture {
                    if delay > 0 { try channel.pipeline.syncOperations.addHandler(InboundDelay(.milliseconds(delay))) }
                    try channel.pipeline.syncOperations.addHandler(
                        try TLSHandler(context: tls, handshakeTimeout: .seconds(10), logger: logger))
                    try channel.pipeline.syncOperations.addHandler(FleetControlHandler(gateway: self, timers: timers))
                }
            }
        if let source { bootstrap = bootstrap.bind(to: source) }
        bootstrap.connect(to: target.control).whenComplete { result in
            switch result {
            case .success(let channel): self.control = channel
            case .failure(let error): self.lost(.connect, "\(error)")
            }
        }
    }

    /// The channel is gone or never came: again after a jittered, growing delay.
    fileprivate func lost(_ stage: FleetTally.Stage, _ why: String) {
        control = nil
        tally.lost(index, stage: stage, why: why)
        guard !stopped else { return }
        let delay = target.retryMillis ?? backoff.next(using: &random)
        loop.scheduleTask(in: .milliseconds(Int64(delay))) { self.connect() }
    }

    fileprivate func granted(id: UInt32, key: [UInt8]) {
        authenticator = ConvertAuthenticator(key: key, keyID: id, identity: target.serverName)
        backoff.reset()
        tally.granted(index)
    }

    /// Opens `count` data connections to the origin through the concentrator and holds them.
    /// Succeeds with how many were established.
    func openSessions(_ count: Int) -> EventLoopFuture<Int> {
        loop.flatSubmit {
            let opened = (0..<count).map { _ in
                self.dataConnection().map { opened -> Bool in
                    self.held.append(opened.session.channel)
                    return true
                }.recover { _ in false }
            }
            return EventLoopFuture.whenAllSucceed(opened, on: self.loop).map { $0.filter { $0 }.count }
        }
    }

    /// Sends `bytes` to the origin as a `PUT` through the concentrator and compares the origin's
    /// answer (count and sha256) with what was sent. Fails with the reason when they differ.
    func verifiedPut(_ bytes: [UInt8], sha256: String) -> EventLoopFuture<Void> {
        loop.flatSubmit {
            self.dataConnection().flatMap { opened -> EventLoopFuture<Void> in
                let channel = opened.session.channel
                let handler = opened.handler
                var buffer = channel.allocator.buffer(capacity: bytes.count + 32)
                buffer.writeString("PUT \(bytes.count)\n")
                buffer.writeBytes(bytes)
                return channel.writeAndFlush(buffer).flatMap { _ in
                    channel.close(mode: .output)
                }.flatMap { _ in handler.answer.futureResult }.flatMapThrowing { answer in
                    let expected = "\(bytes.count) \(sha256)\n"
                    let got = String(decoding: answer, as: UTF8.self)
                    guard got == expected else {
                        throw LabError(
                            "\(self.name): origin answered \(got.debugDescription), sent \(expected.debugDescription)")
                    }
                }.always { _ in channel.close(promise: nil) }
            }
        }
    }

    /// A data connection with its Convert exchange done, as the gateway's relay makes one.
    private func dataConnection() -> EventLoopFuture<(session: DataSession, handler: FleetSessionHandler)> {
        guard let authenticator else {
            return loop.makeFailedFuture(LabError("\(name): no session key granted"))
        }
        let request: [UInt8]
        do {
            request = try ConvertClientHandshake.request(
                to: target.origin, authenticator: authenticator, nowMillis: wallClockMillis(),
                nonce: SecureRandom.bytes(ConvertAuthentication.nonceSize))
        } catch {
            return loop.makeFailedFuture(error)
        }
        let handler = FleetSessionHandler(loop: loop)
        var bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.seconds(10))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .enableMPTCP(true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler) }
            }
        if let source { bootstrap = bootstrap.bind(to: source) }
        return bootstrap.connect(to: target.data).flatMapError { error in
            // NIO's debug builds trap on a promise that is never completed.
            handler.established.fail(error)
            handler.answer.fail(error)
            return self.loop.makeFailedFuture(error)
        }.flatMap { channel in
            var buffer = channel.allocator.buffer(capacity: request.count)
            buffer.writeBytes(request)
            return channel.writeAndFlush(buffer).flatMap { _ in handler.established.futureResult }.map {
                _ -> (session: DataSession, handler: FleetSessionHandler) in (DataSession(channel: channel), handler)
            }.flatMapErrorThrowing { error -> (session: DataSession, handler: FleetSessionHandler) in
                channel.close(promise: nil)
                throw error
            }
        }
    }

    /// Closes the control channel and every held session; no reconnect after.
    func stop() -> EventLoopFuture<Void> {
        loop.submit {
            self.stopped = true
            self.control?.close(promise: nil)
            for channel in self.held { channel.close(promise: nil) }
            self.held = []
        }
    }
}

/// A data connection, boxed so the future's value stays one type.
struct DataSession {
    var channel: Channel
}

/// The control channel after TLS: a `GatewayControlSession` and its actions, as the gateway's
/// `ControlClientHandler` carries them out (keys, class and addresses are only noted).
final class FleetControlHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let gateway: SimulatedGateway
    private var session: GatewayControlSession
    private var started = false
    private var everGranted = false
    private var timer: Scheduled<Void>?
    private var reason: String?

    init(gateway: SimulatedGateway, timers: ControlTimers) {
        self.gateway = gateway
        session = GatewayControlSession(configuration: .init(software: "braid-lab fleet", timers: timers))
    }

    private static func now() -> UInt64 { monotonicNanos() / 1_000_000 }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is TLSHandshakeCompleted else {
            context.fireUserInboundEventTriggered(event)
            return
        }
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
        if started, session.closeReason == nil { _ = session.connectionClosed(nowMillis: Self.now()) }
        // Which step it got to: refusals at accept and failed handshakes show as "tls", a channel
        // the concentrator ended after a grant (its restart) as "channel".
        let stage: FleetTally.Stage = everGranted ? .channel : (started ? .grant : .tls)
        gateway.lost(stage, reason ?? session.closeReason.map { "\($0)" } ?? "connection closed")
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
            case .installKey(let id, let key, _):
                everGranted = true
                gateway.granted(id: id, key: key)
            case .retireKey, .applyClass, .learnAddresses, .applyUplinkShares, .applyOperatorRules:
                break
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
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: .milliseconds(Int64(next > now ? next - now : 0))) {
            let (handler, context) = bound.value
            handler.perform(handler.session.tick(nowMillis: Self.now()), context)
        }
    }
}

/// A data connection's reader: the concentrator's Convert reply first (`established`), then
/// whatever the origin sends until it closes (`answer`).
final class FleetSessionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let established: EventLoopPromise<Void>
    let answer: EventLoopPromise<[UInt8]>
    private var reply = ConvertClientHandshake()
    private var isEstablished = false
    private var received: [UInt8] = []

    init(loop: EventLoop) {
        established = loop.makePromise()
        answer = loop.makePromise()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        guard !isEstablished else {
            received += bytes
            return
        }
        switch reply.feed(bytes) {
        case .needMore:
            break
        case .established(_, let remainder):
            isEstablished = true
            received += remainder
            established.succeed(())
        case .refused(let error):
            fail(context, LabError("concentrator refused the data connection: \(error)"))
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The origin half-closed after its answer: that is the whole answer.
        if event as? ChannelEvent == .inputClosed {
            answer.succeed(received)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        established.fail(LabError("data connection closed before the concentrator's reply"))
        answer.succeed(received)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        fail(context, error)
    }

    private func fail(_ context: ChannelHandlerContext, _ error: Error) {
        established.fail(error)
        answer.fail(error)
        context.close(promise: nil)
    }
}

/// Holds what a control channel receives for a fixed time before the handlers behind it see it,
/// in order: the concentrator's TLS flights reach the simulated gateway one path delay late, as
/// over a long or busy uplink (the fleet lab's veth has no delay, and this kernel no sch_netem),
/// so each handshake stays in flight for that long at least. The channel's end is passed on at
/// once, with whatever was held dropped: NIO takes the handlers out of a closed channel's
/// pipeline, so an end passed on later would reach nobody.
final class InboundDelay: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let delay: TimeAmount
    private var held: [NIOAny] = []

    init(_ delay: TimeAmount) { self.delay = delay }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        held.append(data)
        // Each read is released `delay` after it came, the oldest first.
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: delay) {
            let (handler, context) = bound.value
            guard !handler.held.isEmpty else { return }
            context.fireChannelRead(handler.held.removeFirst())
            context.fireChannelReadComplete()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {}  // fired with each delayed read

    func channelInactive(context: ChannelHandlerContext) {
        held.removeAll()
        context.fireChannelInactive()
    }
}
