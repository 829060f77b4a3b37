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
        let limit = 64 * 1024
        let caught = group.next().makePromise(of: Error.self)
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

        let error = try caught.futureResult.wait()
        XCTAssertEqual(error as? UnsentOutputOverflow, UnsentOutputOverflow(limit: limit))
        XCTAssertEqual("\(error)", "the peer does not read: more than 65536 bytes unsent")
    }
}

/// Writes 64 KiB chunks while the channel is writable, up to 64 MiB; hands on the first error.
private final class Flooder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let caught: EventLoopPromise<Error>
    var written = 0

    init(caught: EventLoopPromise<Error>) { self.caught = caught }

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
        caught.succeed(error)
    }
}
