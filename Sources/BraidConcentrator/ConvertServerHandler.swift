import BraidCore
import BraidDataPlane
import BraidWire
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// State shared by every data connection of a concentrator: the key, the replay cache and the
/// deny policy. The replay cache is global so a replay on another event loop is still caught.
final class ConcentratorContext: Sendable {
    let authenticator: ConvertAuthenticator
    let replay: NIOLockedValueBox<ReplayGuard>
    let denyList: DenyList
    let handshakeTimeout: TimeAmount
    let localAddresses: NIOLockedValueBox<(at: UInt64, set: Set<IPAddress>)>
    let logger: Logger

    init(authenticator: ConvertAuthenticator, denyList: DenyList, handshakeTimeout: TimeAmount, logger: Logger) {
        self.authenticator = authenticator
        self.replay = NIOLockedValueBox(ReplayGuard())
        self.denyList = denyList
        self.handshakeTimeout = handshakeTimeout
        self.localAddresses = NIOLockedValueBox((0, DenyList.localAddresses()))
        self.logger = logger
    }

    /// The host's own addresses, refreshed at most once a second (addresses change rarely, and
    /// getifaddrs per connection would cost more than the rest of the handshake).
    func currentLocalAddresses() -> Set<IPAddress> {
        let now = wallClockMillis()
        return localAddresses.withLockedValue { cached in
            if now &- cached.at > 1000 {
                cached = (now, DenyList.localAddresses())
            }
            return cached.set
        }
    }
}

/// The concentrator's handler for one MPTCP data connection until it is relayed: reads and
/// checks the Convert request, applies policy, connects to the destination and answers.
final class ConvertServerHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        case readingRequest
        case connecting
        case relaying
        case closing
    }

    private let shared: ConcentratorContext
    private var handshake: ConvertServerHandshake
    private var state = State.readingRequest
    private var timeout: Scheduled<Void>?
    private var peer = "?"
    private var early: [ByteBuffer] = []
    private var earlyEOF = false

    init(shared: ConcentratorContext) {
        self.shared = shared
        self.handshake = ConvertServerHandshake(authenticator: shared.authenticator)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        peer = context.channel.remoteAddress?.braidEndpoint?.description ?? "?"
        timeout = context.eventLoop.scheduleTask(in: shared.handshakeTimeout) { [self] in
            guard case .readingRequest = state else { return }
            shared.logger.info("data connection refused", metadata: ["peer": "\(peer)", "reason": "handshake timeout"])
            state = .closing
            RelayHandler.reset(context.channel)
        }
        if context.channel.isActive { context.read() }
    }

    /// Reading is manual until the relay takes over: one read at a time, only while the request
    /// is incomplete, so a client cannot make the concentrator buffer more than one message.
    func channelActive(context: ChannelHandlerContext) {
        context.read()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        switch state {
        case .readingRequest:
            break
        case .connecting:
            // One read() can deliver several reads; client data behind the request waits here
            // for the origin connection (at most one read cycle, reading is off meanwhile).
            early.append(buffer)
            return
        case .relaying, .closing:
            return  // refusing: the client's bytes are drained and dropped
        }
        let action = shared.replay.withLockedValue { replay in
            handshake.feed(buffer.readableBytesView, nowMillis: wallClockMillis(), replay: &replay)
        }
        switch action {
        case .needMore:
            context.read()
        case .reject(let error):
            refuse(context: context, error)
        case .connect(let request, let remainder):
            let destination = request.destination
            if let reason = shared.denyList.refusal(
                for: destination.address, localAddresses: shared.currentLocalAddresses())
            {
                refuse(context: context, ConvertError(.notAuthorized, "destination \(destination) denied: \(reason)"))
                return
            }
            state = .connecting
            timeout?.cancel()
            connect(context: context, request: request, remainder: remainder)
        }
    }

    private func connect(context: ChannelHandlerContext, request: ConvertRequest, remainder: [UInt8]) {
        let address: SocketAddress
        do {
            address = try SocketAddress(request.destination)
        } catch {
            refuse(context: context, ConvertError(.destinationUnreachable, "\(request.destination): \(error)"))
            return
        }
        let inbound = context.channel
        Dialer.tcp(on: context.eventLoop, to: address, timeout: .seconds(10)).whenComplete { [self] result in
            switch result {
            case .failure(let error):
                refuse(context: context, ConvertError(Self.code(for: error), "connect \(request.destination): \(error)"))
            case .success(let origin):
                guard inbound.isActive else {
                    origin.close(promise: nil)
                    return
                }
                state = .relaying
                var reply = inbound.allocator.buffer(capacity: 8)
                reply.writeBytes(ConvertServerHandshake.successReply(wantsInfo: request.wantsInfo))
                inbound.writeAndFlush(reply, promise: nil)
                if !remainder.isEmpty {
                    var first = origin.allocator.buffer(capacity: remainder.count)
                    first.writeBytes(remainder)
                    origin.write(first, promise: nil)
                }
                for buffer in early { origin.write(buffer, promise: nil) }
                early = []
                origin.flush()
                let (fromClient, fromOrigin) = RelayHandler.matchedPair()
                do {
                    try inbound.pipeline.syncOperations.addHandler(fromClient)
                    try origin.pipeline.syncOperations.addHandler(fromOrigin)
                    inbound.pipeline.syncOperations.removeHandler(self, promise: nil)
                } catch {
                    RelayHandler.reset(inbound)
                    RelayHandler.reset(origin)
                    return
                }
                if earlyEOF {
                    inbound.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
                }
                inbound.setOption(.autoRead, value: true).whenFailure { _ in }
                origin.setOption(.autoRead, value: true).whenFailure { _ in }
                shared.logger.debug(
                    "relaying", metadata: ["peer": "\(peer)", "destination": "\(request.destination)"])
            }
        }
    }

    /// RFC 8803 §5.2.6 codes for a failed connect to the destination.
    static func code(for error: Error) -> ConvertErrorCode {
        if let e = error as? IOError {
            switch e.errnoCode {
            case ECONNREFUSED, ECONNRESET: return .connectionReset
            case EHOSTUNREACH, ENETUNREACH, EADDRNOTAVAIL: return .destinationUnreachable
            default: return .networkFailure
            }
        }
        if let e = error as? NIOConnectionError, let first = e.connectionErrors.first {
            return code(for: first.error)
        }
        if error is ChannelError { return .destinationUnreachable }  // connect timeout
        return .networkFailure
    }

    /// Sends the Error TLV, then closes: write side first so the reply is not lost to a reset,
    /// then the whole connection shortly after, whatever the client does.
    private func refuse(context: ChannelHandlerContext, _ error: ConvertError) {
        guard state != .closing && state != .relaying else { return }
        state = .closing
        timeout?.cancel()
        shared.logger.info(
            "data connection refused", metadata: ["peer": "\(peer)", "code": "\(error.code.rawValue)", "reason": "\(error)"])
        var reply = context.channel.allocator.buffer(capacity: 8)
        reply.writeBytes(ConvertServerHandshake.errorReply(error.code))
        let channel = context.channel
        channel.writeAndFlush(reply).whenComplete { _ in
            channel.close(mode: .output, promise: nil)
            channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
            channel.setOption(.autoRead, value: true).whenFailure { _ in }  // drain so the close is clean
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed {
            switch state {
            case .readingRequest:
                refuse(context: context, ConvertError(.malformedMessage, "connection closed inside the request"))
            case .connecting:
                earlyEOF = true  // replayed to the relay once it is in place
            case .relaying, .closing:
                break
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timeout?.cancel()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        timeout?.cancel()
        context.close(promise: nil)
    }
}
