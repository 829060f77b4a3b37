import BraidCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// What a route answers: a status, a media type and the body. Built by the route's owner
/// (the metrics exposition, the status page, the status document), sent as it is.
public struct HTTPAnswer: Sendable {
    public var status: HTTPResponseStatus
    public var contentType: String
    public var body: [UInt8]
    /// Extra header lines, e.g. `Cache-Control`.
    public var headers: [(String, String)]

    public init(status: HTTPResponseStatus = .ok, contentType: String, body: [UInt8], headers: [(String, String)] = []) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.headers = headers
    }

    public init(status: HTTPResponseStatus = .ok, contentType: String, text: String, headers: [(String, String)] = []) {
        self.init(status: status, contentType: contentType, body: Array(text.utf8), headers: headers)
    }

    static func plain(_ status: HTTPResponseStatus) -> HTTPAnswer {
        HTTPAnswer(status: status, contentType: "text/plain; charset=utf-8", text: "\(status.code) \(status.reasonPhrase)\n")
    }
}

/// A route's handler. Called on the server's event loop thread: it must not block (read a
/// snapshot someone else keeps current; never touch the disk or the data plane's locks for long).
public typealias HTTPRoute = @Sendable () -> HTTPAnswer

/// The bounds that keep an HTTP listener cheap whoever connects: a page left open on many
/// screens, a scraper, or a client that connects and says nothing.
public struct HTTPServerLimits: Sendable {
    /// Connections open at once; more are closed at accept.
    public var maxConnections: Int
    /// Connections open at once from one IPv4 address or IPv6 /64: one client that holds
    /// connections open cannot take the whole of `maxConnections` from the scraper or the
    /// browser next to it. A browser opens about six per host.
    public var maxConnectionsPerSource: Int
    /// A connection with no complete request for this long is closed.
    public var idleTimeout: TimeAmount

    public init(maxConnections: Int = 64, maxConnectionsPerSource: Int = 16, idleTimeout: TimeAmount = .seconds(15)) {
        self.maxConnections = maxConnections
        self.maxConnectionsPerSource = maxConnectionsPerSource
        self.idleTimeout = idleTimeout
    }
}

/// Which `Host` header values a listener answers. A page on a private address is readable by any
/// website a LAN browser opens, through DNS rebinding: the attacker's name first resolves to its
/// own server, then to the gateway's address, and the browser sends the gateway's answer to the
/// attacker's script as same-origin. The request then carries the attacker's name as its Host;
/// answering only addresses written as IP literals (and names the operator lists) defeats it.
public enum HostPolicy: Sendable {
    /// Every Host (a scraper configured by name, say).
    case any
    /// Hosts that are IP address literals (`198.18.0.1`, `[2001:db8::1]`, with or without a
    /// port), `localhost`, and these names (compared without case).
    case addressesAnd([String])

    /// Whether a request with this Host header (nil: none, as HTTP/1.0 allows) is answered.
    public func allows(_ host: String?) -> Bool {
        guard case .addressesAnd(let names) = self else { return true }
        guard let host, !host.isEmpty else { return false }
        var name = Substring(host)
        if name.hasPrefix("[") {
            // [IPv6] or [IPv6]:port
            guard let close = name.firstIndex(of: "]") else { return false }
            let inner = name[name.index(after: name.startIndex)..<close]
            let rest = name[name.index(after: close)...]
            guard rest.isEmpty || (rest.first == ":" && UInt16(rest.dropFirst()) != nil) else { return false }
            return IPAddress(String(inner)).map { !$0.isIPv4 } ?? false
        }
        if let colon = name.lastIndex(of: ":") {
            guard UInt16(name[name.index(after: colon)...]) != nil else { return false }
            name = name[..<colon]
        }
        let lowered = name.lowercased()
        if lowered == "localhost" || names.contains(where: { $0.lowercased() == lowered }) { return true }
        return IPAddress(lowered).map(\.isIPv4) ?? false
    }
}

/// A small read-only HTTP/1.1 server: `GET` and `HEAD` of fixed paths, nothing else. It exists
/// for the metrics exposition and the gateway's status page, which both serve documents the
/// daemon already keeps; it never reads a request body, and every listener it opens is bounded
/// by `HTTPServerLimits`.
public final class HTTPServer: @unchecked Sendable {
    public let endpoint: Endpoint
    private let group: MultiThreadedEventLoopGroup
    private let channel: Channel

    /// Binds and starts serving. Throws when the address cannot be bound (in use, not local).
    public init(
        bind endpoint: Endpoint, routes: [String: HTTPRoute], limits: HTTPServerLimits = HTTPServerLimits(),
        hosts: HostPolicy = .any, logger: Logger
    ) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let open = ConnectionCount(limit: limits.maxConnections, perSource: limits.maxConnectionsPerSource)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // An IPv4 address or an IPv6 /64: the block one subscriber or host holds.
                    guard let source = SourceBlock(channel.remoteAddress) else {
                        channel.close(promise: nil)
                        return
                    }
                    guard open.enter(source) else {
                        // Over a bound: closed before any buffer is allocated for it.
                        channel.close(promise: nil)
                        return
                    }
                    channel.closeFuture.whenComplete { _ in open.leave(source) }
                    // A peer that sends requests and never reads the answers: stop reading its
                    // requests while its answers cannot be written, or they pile up in memory.
                    try channel.pipeline.syncOperations.addHandler(BackPressureHandler())
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(
                        IdleStateHandler(readTimeout: limits.idleTimeout))
                    try channel.pipeline.syncOperations.addHandler(RouteHandler(routes: routes, hosts: hosts))
                }
            }
        do {
            channel = try bootstrap.bind(host: "\(endpoint.address)", port: Int(endpoint.port)).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw HTTPServerError.bind(endpoint, "\(error)")
        }
        self.group = group
        if endpoint.port == 0, let port = channel.localAddress?.port {
            self.endpoint = Endpoint(address: endpoint.address, port: UInt16(port))
        } else {
            self.endpoint = endpoint
        }
        logger.info("http listener", metadata: ["address": "\(self.endpoint)", "paths": "\(routes.keys.sorted())"])
    }

    /// Closes the listener and every open connection.
    public func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}

public enum HTTPServerError: Error, CustomStringConvertible {
    case bind(Endpoint, String)

    public var description: String {
        switch self {
        case .bind(let endpoint, let why): return "cannot listen on \(endpoint): \(why)"
        }
    }
}

/// Open connections, in all and by source, shared by the accept path of one listener.
private final class ConnectionCount: Sendable {
    private struct Counts {
        var total = 0
        var bySource: [SourceBlock: Int] = [:]
    }

    private let open = NIOLockedValueBox(Counts())
    private let limit: Int
    private let perSource: Int

    init(limit: Int, perSource: Int) {
        self.limit = limit
        self.perSource = perSource
    }

    func enter(_ source: SourceBlock) -> Bool {
        open.withLockedValue { c in
            guard c.total < limit, c.bySource[source, default: 0] < perSource else { return false }
            c.total += 1
            c.bySource[source, default: 0] += 1
            return true
        }
    }

    func leave(_ source: SourceBlock) {
        open.withLockedValue { c in
            c.total -= 1
            let n = c.bySource[source, default: 1] - 1
            c.bySource[source] = n > 0 ? n : nil
        }
    }
}

/// Answers each request from the route table; anything but GET or HEAD of a known path gets
/// 405 or 404. Request bodies are dropped as they arrive.
private final class RouteHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let routes: [String: HTTPRoute]
    private let hosts: HostPolicy
    private var head: HTTPRequestHead?

    init(routes: [String: HTTPRoute], hosts: HostPolicy) {
        self.routes = routes
        self.hosts = hosts
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
        case .body:
            break
        case .end:
            guard let h = head else { return }
            head = nil
            respond(context: context, to: h)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    private func respond(context: ChannelHandlerContext, to request: HTTPRequestHead) {
        let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
        let answer: HTTPAnswer
        if !hosts.allows(request.headers.first(name: "host")) {
            // 421: this server does not answer for that name (the request may be a rebinding).
            answer = .plain(.misdirectedRequest)
        } else if request.method != .GET && request.method != .HEAD {
            answer = .plain(.methodNotAllowed)
        } else if let route = routes[path] {
            answer = route()
        } else {
            answer = .plain(.notFound)
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: answer.contentType)
        headers.add(name: "Content-Length", value: "\(answer.body.count)")
        for (name, value) in answer.headers { headers.add(name: name, value: value) }
        let keepAlive = request.isKeepAlive
        headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        let responseHead = HTTPResponseHead(version: request.version, status: answer.status, headers: headers)
        context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
        if request.method != .HEAD && !answer.body.isEmpty {
            var buffer = context.channel.allocator.buffer(capacity: answer.body.count)
            buffer.writeBytes(answer.body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            done.whenComplete { _ in context.close(promise: nil) }
        }
    }
}
