import BraidWire
import NIOCore

/// First handler of a gateway's MPTCP data connection: reads the concentrator's Convert reply
/// off the stream, then gets out of the way. Bytes after the reply go on to the relay.
public final class ConvertReplyHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer

    private var handshake = ConvertClientHandshake()
    private let onRefused: (ConvertError) -> Void
    private var done = false

    /// `onRefused` runs on the event loop when the concentrator answers with an Error TLV or an
    /// unreadable reply, or the connection ends before a reply.
    public init(onRefused: @escaping (ConvertError) -> Void) {
        self.onRefused = onRefused
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else {
            context.fireChannelRead(data)
            return
        }
        let buffer = unwrapInboundIn(data)
        switch handshake.feed(buffer.readableBytesView) {
        case .needMore:
            return
        case .established(_, let remainder):
            done = true
            if !remainder.isEmpty {
                var rest = context.channel.allocator.buffer(capacity: remainder.count)
                rest.writeBytes(remainder)
                context.fireChannelRead(wrapInboundOut(rest))
            }
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
        case .refused(let error):
            done = true
            onRefused(error)
            context.close(promise: nil)
        }
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if !done, let e = event as? ChannelEvent, e == .inputClosed {
            done = true
            onRefused(ConvertError(.networkFailure, "connection closed before the Convert reply"))
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        if !done {
            done = true
            onRefused(ConvertError(.networkFailure, "connection closed before the Convert reply"))
        }
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        if !done {
            done = true
            onRefused(ConvertError(.networkFailure, "before the Convert reply: \(error)"))
            context.close(promise: nil)
            return
        }
        context.fireErrorCaught(error)
    }
}
