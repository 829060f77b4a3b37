import BraidTLS
import Foundation
import NIOCore
import NIOPosix
import XCTest

/// UnsentOutputLimit on a real loopback connection whose client never reads.
final class UnsentOutputLimitTests: XCTestCase {
    func testAChannelWhosePeerDoesNotReadIsClosedOncePastTheLimit() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        // Above NIO's default high water mark (64 KiB), so the test sees the handler set its own.
        let limit = 1024 * 1024
        let caught = group.next().makePromise(of: (Error, Int).self)
        group.next().scheduleTask(in: .seconds(10)) { caught.fail(TLSError(.handshakeTimeout, "test waited 10 s")) }
        let server = try ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        UnsentOutputLimit(limit: limit), Flooder(caught: caught))
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        defer { try? server.close().wait() }
        // The client reads nothing, with a small window: the server's output piles up in NIO.
        let client = try ClientBootstrap(group: group)
            .channelOption(.autoRead, value: false)
            .channelOption(.socketOption(.so_rcvbuf), value: 4096)
            .connect(to: server.localAddress!).wait()
        defer { try? client.close().wait() }

        let (error, written) = try caught.futureResult.wait()
        XCTAssertEqual(error as? UnsentOutputOverflow, UnsentOutputOverflow(limit: limit))
        XCTAssertEqual("\(error)", "the peer does not read: more than 1048576 bytes unsent")
        // `written` counts the chunks before the one that tipped it over.
        XCTAssertGreaterThanOrEqual(written + 64 * 1024, limit, "not closed before the limit")
        XCTAssertLessThan(written, 64 * 1024 * 1024, "closed long before everything was queued")
    }
}

/// Writes 64 KiB chunks while the channel is active, up to 64 MiB; hands on the first error and
/// how much had been written by then.
private final class Flooder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let caught: EventLoopPromise<(Error, Int)>
    var written = 0

    init(caught: EventLoopPromise<(Error, Int)>) { self.caught = caught }

    func channelActive(context: ChannelHandlerContext) {
        let chunk = context.channel.allocator.buffer(repeating: 0x42, count: 64 * 1024)
        // Far more than the kernel's buffers hold, written at once: what a pong flood looks like.
        while written < 64 * 1024 * 1024 && context.channel.isActive {
            context.write(wrapOutboundOut(chunk), promise: nil)
            written += chunk.readableBytes
            if written % (1024 * 1024) == 0 { context.flush() }
        }
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        caught.succeed((error, written))
    }
}
