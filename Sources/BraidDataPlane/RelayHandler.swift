import CBraidLinux
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// One half of a relay: a matched pair of these joins two channels (after swift-nio-examples'
/// GlueHandler). Reads are held back while the partner cannot take more (back-pressure, so a
/// fast sender never fills our memory), a read EOF becomes the partner's write shutdown
/// (half-close kept), and an abortive close (reset) becomes the partner's reset.
///
/// Both channels must be on the same event loop and have `allowRemoteHalfClosure` set.
public final class RelayHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private var partner: RelayHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    private var inputClosed = false
    private var outputClosing = false
    private var outputClosed = false
    private var finished = false
    /// Called with the number of bytes this side read, to keep byte counters.
    private let onRead: ((Int) -> Void)?

    private init(onRead: ((Int) -> Void)?) {
        self.onRead = onRead
    }

    /// A joined pair: the first goes in channel A's pipeline, the second in channel B's.
    public static func matchedPair(
        countA: ((Int) -> Void)? = nil, countB: ((Int) -> Void)? = nil
    ) -> (RelayHandler, RelayHandler) {
        let a = RelayHandler(onRead: countA)
        let b = RelayHandler(onRead: countB)
        a.partner = b
        b.partner = a
        return (a, b)
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // The partner may have asked to read before this half was in place.
        if context.channel.isWritable { partner?.partnerBecameWritable() }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.partner = nil
    }

    // MARK: inbound

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        onRead?(buffer.readableBytes)
        partner?.partnerWrite(buffer)
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        partner?.partnerFlush()
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            partner?.partnerBecameWritable()
        }
        context.fireChannelWritabilityChanged()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed {
            // Our peer sent FIN: pass it on as a write shutdown once queued data is flushed.
            inputClosed = true
            partner?.partnerInputClosed()
            closeIfDone()
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        // ECONNRESET, EPIPE, ETIMEDOUT: the connection is gone without a clean close. The far
        // side must learn the same way (a reset), not by a FIN that would look like success.
        finished = true
        partner?.partnerReset()
        context.close(promise: nil)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        guard !finished else {
            context.fireChannelInactive()
            return
        }
        finished = true
        if outputClosed && !inputClosed {
            // NIO reports the peer's FIN on a channel whose output is already shut as a plain
            // close, without an inputClosed event: this is the clean end of the second direction.
            inputClosed = true
            partner?.partnerInputClosed()
        } else if !(inputClosed && outputClosing) {
            // Closed with a direction still open and no FIN: an abort, passed on as a reset.
            partner?.partnerReset()
        }
        context.fireChannelInactive()
    }

    // MARK: outbound

    public func read(context: ChannelHandlerContext) {
        if let partner, partner.isWritable {
            context.read()
        } else {
            pendingRead = true
        }
    }

    // MARK: partner calls

    private var isWritable: Bool { context?.channel.isWritable ?? false }

    private func partnerWrite(_ buffer: ByteBuffer) {
        context?.write(wrapOutboundOut(buffer), promise: nil)
    }

    private func partnerFlush() {
        context?.flush()
    }

    private func partnerBecameWritable() {
        if pendingRead {
            pendingRead = false
            context?.read()
        }
    }

    private func partnerInputClosed() {
        guard let context, !outputClosing else { return }
        outputClosing = true
        // Shut our write side only once every byte queued before the FIN is in the kernel:
        // an empty write completes after all earlier writes. Closing earlier would lose them
        // (NIO turns an output close on a channel whose input already ended into a full close,
        // which fails queued writes).
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0)), promise: written)
        written.futureResult.flatMap { () -> EventLoopFuture<Void> in
            let done = context.eventLoop.makePromise(of: Void.self)
            context.close(mode: .output, promise: done)
            return done.futureResult
        }.whenComplete { [self] result in
            switch result {
            case .success:
                outputClosed = true
                closeIfDone()
            case .failure:
                partnerReset()
                partner?.partnerReset()
            }
        }
    }

    private func partnerReset() {
        guard !finished, let context else { return }
        finished = true
        Self.reset(context.channel)
    }

    /// Both directions ended cleanly on this side: close this channel only. The partner ends
    /// itself the same way once its own output is flushed.
    private func closeIfDone() {
        if inputClosed && outputClosed, !finished, let context {
            finished = true
            context.close(promise: nil)
        }
    }

    /// Closes `channel` abortively: SO_LINGER {1, 0} makes the kernel send a reset.
    public static func reset(_ channel: Channel) {
        if let provider = channel as? SocketOptionProvider {
            provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in
                channel.close(promise: nil)
            }
        } else {
            channel.close(promise: nil)
        }
    }
}
