import NIOCore

/// The control channel's peer stopped reading: more output is waiting to be written than the
/// limit allows, so the channel is closed rather than buffering for ever.
public struct UnsentOutputOverflow: Error, CustomStringConvertible, Equatable, Sendable {
    /// The limit that was passed, in bytes.
    public var limit: Int

    public init(limit: Int) {
        self.limit = limit
    }

    public var description: String { "the peer does not read: more than \(limit) bytes unsent" }
}

/// Closes a channel whose unsent output passes `limit` bytes. A peer that sends pings and never
/// reads the pongs would otherwise make NIO queue every pong once the socket's send buffer and
/// the peer's receive window are full: memory without bound, paid by whoever answers.
///
/// NIO counts the bytes written and not yet taken by the kernel and marks the channel unwritable
/// once they pass the high water mark; this handler sets that mark to `limit` and treats the
/// channel becoming unwritable as the end. It fires `UnsentOutputOverflow` down the pipeline
/// (the session handler logs it, once) and closes. Put it first in the pipeline, next to the
/// socket, where ciphertext is counted.
public final class UnsentOutputLimit: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = NIOAny

    /// A control channel carries frames of at most 1028 bytes, a few at a time: 256 KiB unsent,
    /// on top of what the kernel's buffers hold, is a peer that does not read, not a slow one.
    public static let defaultLimit = 256 * 1024

    public let limit: Int
    private var tripped = false

    public init(limit: Int = UnsentOutputLimit.defaultLimit) {
        precondition(limit > 0, "the unsent output limit must be positive")
        self.limit = limit
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        // Low at half the limit: NIO requires 1 <= low <= high, and the low mark only matters
        // for writability coming back, which a closed channel never sees.
        let mark = ChannelOptions.Types.WriteBufferWaterMark(low: max(1, limit / 2), high: limit)
        if let options = context.channel.syncOptions {
            try? options.setOption(ChannelOptions.writeBufferWaterMark, value: mark)
        } else {
            context.channel.setOption(ChannelOptions.writeBufferWaterMark, value: mark).whenFailure { _ in }
        }
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if !context.channel.isWritable && !tripped {
            tripped = true
            context.fireErrorCaught(UnsentOutputOverflow(limit: limit))
            context.close(promise: nil)
        }
        context.fireChannelWritabilityChanged()
    }
}

@available(*, unavailable)
extension UnsentOutputLimit: Sendable {}
