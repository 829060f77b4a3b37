import BraidTLS
import Foundation
import Logging
import NIOCore
import NIOPosix
import XCTest

/// TLSHandler on both ends of real sockets on 127.0.0.1. Every wait is bounded by a timer that
/// fails the awaited promise.
final class TLSHandlerTests: XCTestCase {
    var group: MultiThreadedEventLoopGroup!

    override func setUp() {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    override func tearDown() {
        try? group.syncShutdownGracefully()
    }

    func testMutualTLSOverLoopbackExchangesDataAndTellsTheServerTheSubscriber() throws {
        let f = try TLSFixture()
        let log = LogRecorder()
        let serverEvents = Recorder()
        let server = try startServer(
            try f.serverContext(crl: true), logger: log.logger("server"), recorder: serverEvents)
        defer { try? server.close().wait() }

        let answer = bounded(group.next().makePromise(of: String.self))
        let clientContext = try f.clientContext()
        let client = try ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let tls = try TLSHandler(
                        context: clientContext, handshakeTimeout: .seconds(5), logger: log.logger("client"))
                    try channel.pipeline.syncOperations.addHandlers(tls, PingClient(answer: answer))
                }
            }
            .connect(to: server.localAddress!).wait()
        defer { try? client.close().wait() }

        XCTAssertEqual(try answer.futureResult.wait(), "sub_42 said: ping from conc.example's client")
        XCTAssertEqual(serverEvents.names, [TLSFixture.clientName])
        XCTAssertTrue(
            log.messages.contains { $0.contains("TLS handshake complete") && $0.contains("sub_42") }, "\(log.messages)")
    }

    func testServerClosesAHandshakeThatNeverFinishesWithHandshakeTimeout() throws {
        let f = try TLSFixture()
        let log = LogRecorder()
        let serverEvents = Recorder()
        let server = try startServer(
            try f.serverContext(), timeout: .milliseconds(300), logger: log.logger("server"), recorder: serverEvents)
        defer { try? server.close().wait() }

        // A client that sends the start of a record header and then nothing.
        let client = try ClientBootstrap(group: group).connect(to: server.localAddress!).wait()
        var partial = client.allocator.buffer(capacity: 3)
        partial.writeBytes([0x16, 0x03, 0x01])
        try client.writeAndFlush(partial).wait()
        let closed = bounded(group.next().makePromise(of: Void.self), seconds: 5)
        client.closeFuture.cascade(to: closed)
        try closed.futureResult.wait()  // the server hung up

        try serverEvents.waitForError()
        XCTAssertEqual(serverEvents.errors.map(\.reason), [.handshakeTimeout])
        XCTAssertTrue(log.messages.contains { $0.contains("handshake timeout") }, "\(log.messages)")
    }

    func testPlaintextOnTheTLSPortIsRefusedAsNotTLSAndClosed() throws {
        let f = try TLSFixture()
        let log = LogRecorder()
        let serverEvents = Recorder()
        let server = try startServer(try f.serverContext(), logger: log.logger("server"), recorder: serverEvents)
        defer { try? server.close().wait() }

        let client = try ClientBootstrap(group: group).connect(to: server.localAddress!).wait()
        var request = client.allocator.buffer(capacity: 32)
        request.writeString("GET / HTTP/1.1\r\n\r\n")
        try client.writeAndFlush(request).wait()
        let closed = bounded(group.next().makePromise(of: Void.self), seconds: 5)
        client.closeFuture.cascade(to: closed)
        try closed.futureResult.wait()

        try serverEvents.waitForError()
        XCTAssertEqual(serverEvents.errors.map(\.reason), [.notTLS])
        XCTAssertTrue(log.messages.contains { $0.contains("TLS refused: not TLS") }, "\(log.messages)")
    }

    func testCountedRefusalsGoToTheCounterAndTheDebugLogNotAWarning() throws {
        let f = try TLSFixture()
        let log = LogRecorder()
        let serverEvents = Recorder()
        let counted = Recorder()
        let server = try startServer(
            try f.serverContext(), logger: log.logger("server"), recorder: serverEvents,
            refusals: .counted { counted.add(error: $0) })
        defer { try? server.close().wait() }

        let client = try ClientBootstrap(group: group).connect(to: server.localAddress!).wait()
        var request = client.allocator.buffer(capacity: 32)
        request.writeString("GET / HTTP/1.1\r\n\r\n")
        try client.writeAndFlush(request).wait()
        try counted.waitForError()
        try serverEvents.waitForError()

        XCTAssertEqual(counted.errors.map(\.reason), [.notTLS])
        XCTAssertEqual(serverEvents.errors.map(\.reason), [.notTLS], "the pipeline still hears of it")
        XCTAssertFalse(log.messages.contains { $0.hasPrefix("warning") }, "\(log.messages)")
        XCTAssertTrue(log.messages.contains { $0.hasPrefix("debug TLS refused: not TLS") }, "\(log.messages)")
    }

    func testExpiredClientIsRefusedOverSocketsAndBothSidesLogWhy() throws {
        let f = try TLSFixture()
        let now = time(nil)
        try f.pki.issue(name: "old", usage: .client, notBefore: now - 10 * 86400, notAfter: now - 86400)
        let log = LogRecorder()
        let serverEvents = Recorder()
        let server = try startServer(try f.serverContext(), logger: log.logger("server"), recorder: serverEvents)
        defer { try? server.close().wait() }

        let clientEvents = Recorder()
        let clientContext = try f.clientContext(name: "old")
        let client = try ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let tls = try TLSHandler(
                        context: clientContext, handshakeTimeout: .seconds(5), logger: log.logger("client"))
                    try channel.pipeline.syncOperations.addHandlers(tls, EventRecorder(clientEvents))
                }
            }
            .connect(to: server.localAddress!).wait()
        defer { try? client.close().wait() }

        try serverEvents.waitForError()
        try clientEvents.waitForError()
        XCTAssertEqual(serverEvents.errors.map(\.reason), [.expiredCertificate])
        XCTAssertEqual(clientEvents.errors.map(\.reason), [.expiredCertificate])
        XCTAssertEqual(serverEvents.names, [], "no handshake completes on the server")
    }

    // MARK: - Harness

    private func startServer(
        _ context: TLSContext, timeout: TimeAmount = .seconds(5), logger: Logger, recorder: Recorder,
        refusals: TLSRefusalReport = .warning
    ) throws -> Channel {
        try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let tls = try TLSHandler(
                        context: context, handshakeTimeout: timeout, logger: logger, refusals: refusals)
                    try channel.pipeline.syncOperations.addHandlers(tls, EventRecorder(recorder), EchoWithName())
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    /// Fails the promise after `seconds` unless it completed: no test waits forever.
    private func bounded<T>(_ promise: EventLoopPromise<T>, seconds: Int64 = 10) -> EventLoopPromise<T> {
        promise.futureResult.eventLoop.scheduleTask(in: .seconds(seconds)) {
            promise.fail(TLSError(.handshakeTimeout, "test waited \(seconds) s"))
        }
        return promise
    }
}

/// Thread-safe record of what the server's pipeline saw.
final class Recorder: @unchecked Sendable {
    private let lock = NSCondition()
    private var _names: [String] = []
    private var _errors: [TLSError] = []

    var names: [String] { lock.withLock { _names } }
    var errors: [TLSError] { lock.withLock { _errors } }

    func add(name: String) { lock.withLock { _names.append(name) } }
    func add(error: TLSError) {
        lock.withLock {
            _errors.append(error)
            lock.broadcast()
        }
    }

    /// Waits up to 5 s for an error to be recorded.
    func waitForError() throws {
        lock.lock()
        defer { lock.unlock() }
        let deadline = Date().addingTimeInterval(5)
        while _errors.isEmpty {
            if !lock.wait(until: deadline) { throw TLSError(.handshakeTimeout, "no error recorded within 5 s") }
        }
    }
}

final class EventRecorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    let recorder: Recorder
    init(_ recorder: Recorder) { self.recorder = recorder }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let done = event as? TLSHandshakeCompleted { recorder.add(name: done.peerCommonName) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let e = error as? TLSError { recorder.add(error: e) }
    }
}

/// Answers every message with "NAME said: message", NAME from the client's certificate.
final class EchoWithName: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    var name = "?"

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let done = event as? TLSHandshakeCompleted { name = done.peerCommonName }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        let text = buffer.readString(length: buffer.readableBytes) ?? ""
        var out = context.channel.allocator.buffer(capacity: 64)
        out.writeString("\(name) said: \(text)")
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
    }
}

/// Sends one message once the handshake is done and hands the answer to `answer`.
final class PingClient: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let answer: EventLoopPromise<String>
    init(answer: EventLoopPromise<String>) { self.answer = answer }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let done = event as? TLSHandshakeCompleted else { return }
        var out = context.channel.allocator.buffer(capacity: 64)
        out.writeString("ping from \(done.peerCommonName)'s client")
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        answer.succeed(buffer.readString(length: buffer.readableBytes) ?? "")
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        answer.fail(error)
    }
}

/// A swift-log handler that keeps every message with its metadata, so tests can check what an
/// operator would read.
final class LogRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []

    var messages: [String] { lock.withLock { lines } }

    func logger(_ label: String) -> Logger {
        Logger(label: label) { _ in Handler(recorder: self) }
    }

    fileprivate func append(_ line: String) { lock.withLock { lines.append(line) } }

    struct Handler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            let rendered = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            recorder.append("\(event.level) \(event.message) \(rendered)")
        }
    }
}
