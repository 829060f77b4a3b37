import Logging
import NIOCore

/// Fired inbound (`userInboundEventTriggered`) once the handshake has finished, before any
/// plaintext is read: who the peer is, by its certificate.
public struct TLSHandshakeCompleted: Sendable, Equatable {
    /// The peer certificate's commonName: on the concentrator, the subscriber id.
    public var peerCommonName: String
    /// The peer certificate's serial (upper-case hex), for a CRL that arrives later.
    public var peerSerial: String = ""
}

/// How a TLS handler reports a refused handshake, besides passing it on as `errorCaught`.
public enum TLSRefusalReport {
    /// One warning line per refusal: a gateway's own connection to its concentrator, rare and
    /// worth an operator's eye.
    case warning
    /// A debug line and this callback, on the channel's event loop: a listener anyone may call,
    /// where a line per refusal would let a flood of bad handshakes flood the log; the callback
    /// counts it for a periodic summary instead.
    case counted((TLSError) -> Void)
}

/// TLS for one NIO channel: ciphertext on the socket side, plaintext (`ByteBuffer`) on the
/// application side, a `TLSEngine` in between. The handshake must finish within
/// `handshakeTimeout`, or the connection is closed with reason `handshake timeout`; every
/// refusal is reported with its reason and the peer's address (`TLSRefusalReport`), passed on as
/// `errorCaught` (a `TLSError`), and followed by the alert OpenSSL chose and a close.
///
/// Plaintext written before the handshake has finished is held and sent right after it; its
/// write promises complete when that ciphertext is written.
public final class TLSHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private let engine: TLSEngine
    private let handshakeTimeout: TimeAmount
    private let refusalReport: TLSRefusalReport
    private var logger: Logger
    private var timer: Scheduled<Void>?
    private var started = false
    private var finished = false  // failed or closed: nothing more goes through the engine
    /// Promises of plaintext written during the handshake.
    private var heldPromises: [EventLoopPromise<Void>] = []

    /// The peer certificate's commonName, once the handshake has finished.
    public private(set) var peerCommonName: String?

    /// - Parameters:
    ///   - context: the client (gateway) or server (concentrator) context.
    ///   - handshakeTimeout: how long the peer gets to finish the handshake.
    ///   - logger: where refusals and completed handshakes are logged.
    ///   - refusals: a warning line per refused handshake, or a debug line and a count.
    public init(
        context: TLSContext, handshakeTimeout: TimeAmount = .seconds(10), logger: Logger,
        refusals: TLSRefusalReport = .warning
    ) throws {
        self.engine = try TLSEngine(context: context)
        self.handshakeTimeout = handshakeTimeout
        self.refusalReport = refusals
        self.logger = logger
    }

    // MARK: - Lifecycle

    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { begin(context) }
    }

    public func channelActive(context: ChannelHandlerContext) {
        begin(context)
        context.fireChannelActive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        failHeldPromises(TLSError(.protocolFailure, "TLS handler removed"))
    }

    private func begin(_ context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        if let remote = context.channel.remoteAddress { logger[metadataKey: "peer"] = "\(remote)" }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let limit = handshakeTimeout
        timer = context.eventLoop.scheduleTask(in: limit) {
            let (handler, context) = loopBound.value
            handler.fail(
                context, TLSError(.handshakeTimeout, "no finished handshake after \(limit.nanoseconds / 1_000_000) ms"))
        }
        do {
            try engine.start()
        } catch {
            fail(context, error)
            return
        }
        writeOutbound(context, promise: nil)
        context.flush()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        if !finished && engine.state == .handshaking && started {
            fail(context, TLSError(.closedDuringHandshake, "the peer closed the connection"), close: false)
        }
        finished = true
        failHeldPromises(TLSError(.closedDuringHandshake, "the connection closed before the handshake finished"))
        context.fireChannelInactive()
    }

    // MARK: - Inbound

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !finished else { return }  // after a refusal, whatever else comes is dropped
        let buffer = unwrapInboundIn(data)
        let received: TLSEngine.Received
        do {
            received = try buffer.withUnsafeReadableBytes { try engine.receive($0) }
        } catch {
            fail(context, error)
            return
        }
        if received.handshakeCompleted {
            timer?.cancel()
            let name = engine.peerCommonName ?? ""
            peerCommonName = name
            logger.info("TLS handshake complete", metadata: ["peer_name": "\(name)"])
            // The held plaintext was encrypted by the engine when the handshake finished; its
            // promises follow the write of that ciphertext.
            let promises = heldPromises
            heldPromises = []
            let written = promises.isEmpty ? nil : context.eventLoop.makePromise(of: Void.self)
            for p in promises { written!.futureResult.cascade(to: p) }
            writeOutbound(context, promise: written)
            context.flush()
            context.fireUserInboundEventTriggered(
                TLSHandshakeCompleted(peerCommonName: name, peerSerial: engine.peerSerial ?? ""))
        }
        if !received.plaintext.isEmpty {
            var out = context.channel.allocator.buffer(capacity: received.plaintext.count)
            out.writeBytes(received.plaintext)
            context.fireChannelRead(wrapInboundOut(out))
        }
        if engine.hasOutbound {
            writeOutbound(context, promise: nil)
            context.flush()
        }
        if received.closedByPeer {
            finished = true
            logger.debug("TLS close_notify from the peer")
            context.close(promise: nil)
        }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        context.fireChannelReadComplete()
    }

    // MARK: - Outbound

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let buffer = unwrapOutboundIn(data)
        let wasHandshaking = engine.state == .handshaking
        do {
            try buffer.withUnsafeReadableBytes { try engine.send($0) }
        } catch {
            promise?.fail(error)
            return
        }
        if wasHandshaking {
            if let promise { heldPromises.append(promise) }
        } else {
            writeOutbound(context, promise: promise)
        }
    }

    public func flush(context: ChannelHandlerContext) {
        context.flush()
    }

    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode != .input && engine.state == .established && !engine.outputClosed {
            engine.close()  // close_notify, so the peer can tell an end from a cut
            writeOutbound(context, promise: nil)
            context.flush()
        }
        if mode == .all {
            finished = true
            timer?.cancel()
        }
        context.close(mode: mode, promise: promise)
    }

    // MARK: - Helpers

    private func writeOutbound(_ context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        let bytes = engine.takeOutbound()
        guard !bytes.isEmpty else {
            promise?.succeed(())
            return
        }
        var out = context.channel.allocator.buffer(capacity: bytes.count)
        out.writeBytes(bytes)
        context.write(wrapOutboundOut(out), promise: promise)
    }

    /// Logs the refusal, tells the pipeline, sends the alert OpenSSL queued and closes.
    private func fail(_ context: ChannelHandlerContext, _ error: Error, close: Bool = true) {
        guard !finished else { return }
        finished = true
        timer?.cancel()
        let tlsError = error as? TLSError ?? TLSError(.protocolFailure, "\(error)")
        engine.abort(tlsError)
        let metadata: Logger.Metadata = ["reason": "\(tlsError.reason.rawValue)", "detail": "\(tlsError.detail)"]
        switch refusalReport {
        case .warning:
            logger.warning("TLS refused: \(tlsError.reason.rawValue)", metadata: metadata)
        case .counted(let count):
            logger.debug("TLS refused: \(tlsError.reason.rawValue)", metadata: metadata)
            count(tlsError)
        }
        failHeldPromises(tlsError)
        context.fireErrorCaught(tlsError)
        guard close else { return }
        writeOutbound(context, promise: nil)
        context.flush()
        context.close(promise: nil)
    }

    private func failHeldPromises(_ error: TLSError) {
        let promises = heldPromises
        heldPromises = []
        for p in promises { p.fail(error) }
    }
}

@available(*, unavailable)
extension TLSHandler: Sendable {}
