import BraidCore
import BraidHTTP
import Logging
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class HTTPServerTests: XCTestCase {
    private let logger = Logger(label: "test")
    private let loopback = Endpoint(address: IPAddress("127.0.0.1")!, port: 0)

    func testServesRoutesAndRefusesTheRest() throws {
        let server = try HTTPServer(
            bind: loopback,
            routes: ["/hello": { HTTPAnswer(contentType: "text/plain", text: "hi there") }],
            logger: logger)
        defer { server.stop() }
        let ok = try exchange(server.endpoint.port, "GET /hello?x=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        XCTAssertTrue(ok.hasPrefix("HTTP/1.1 200 OK"), ok)
        XCTAssertTrue(ok.hasSuffix("\r\n\r\nhi there"), ok)
        let head = try exchange(server.endpoint.port, "HEAD /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        XCTAssertTrue(head.contains("Content-Length: 8"), head)
        XCTAssertFalse(head.contains("hi there"), head)
        let missing = try exchange(server.endpoint.port, "GET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        XCTAssertTrue(missing.hasPrefix("HTTP/1.1 404"), missing)
        let post = try exchange(
            server.endpoint.port, "POST /hello HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")
        XCTAssertTrue(post.hasPrefix("HTTP/1.1 405"), post)
        let garbage = try exchange(server.endpoint.port, "\u{1}\u{2}\u{3} nonsense\r\n\r\n")
        XCTAssertTrue(garbage.isEmpty || garbage.hasPrefix("HTTP/1.1 400"), garbage)
    }

    func testHostPolicyAnswersAddressesOnly() throws {
        let policy = HostPolicy.addressesAnd(["braid.lan"])
        for host in ["198.18.0.1", "198.18.0.1:8080", "[2001:db8::1]", "[2001:db8::1]:80", "localhost:80", "BRAID.lan"] {
            XCTAssertTrue(policy.allows(host), host)
        }
        for host in [nil, "", "evil.example", "evil.example:80", "198.18.0.1.evil.example", "[198.18.0.1]",
            "2001:db8::1", "[2001:db8::1", "198.18.0.1:http", "[::1]x"] as [String?]
        {
            XCTAssertFalse(policy.allows(host), host ?? "nil")
        }
        XCTAssertTrue(HostPolicy.any.allows("evil.example"))

        let server = try HTTPServer(
            bind: loopback, routes: ["/": { HTTPAnswer(contentType: "text/plain", text: "x") }], hosts: policy,
            logger: logger)
        defer { server.stop() }
        let rebound = try exchange(server.endpoint.port, "GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
        XCTAssertTrue(rebound.hasPrefix("HTTP/1.1 421"), rebound)
        let direct = try exchange(
            server.endpoint.port, "GET / HTTP/1.1\r\nHost: 127.0.0.1:\(server.endpoint.port)\r\nConnection: close\r\n\r\n")
        XCTAssertTrue(direct.hasPrefix("HTTP/1.1 200"), direct)
    }

    func testConnectionsOverTheLimitAreClosedAndIdleOnesTimeOut() throws {
        let server = try HTTPServer(
            bind: loopback,
            routes: ["/": { HTTPAnswer(contentType: "text/plain", text: "x") }],
            limits: HTTPServerLimits(maxConnections: 2, idleTimeout: .milliseconds(300)),
            logger: logger)
        defer { server.stop() }
        let a = try connectTo(server.endpoint.port)
        let b = try connectTo(server.endpoint.port)
        defer { close(a); close(b) }
        let c = try connectTo(server.endpoint.port)
        defer { close(c) }
        send(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        let third = readAll(c, timeoutMillis: 2000)
        XCTAssertTrue(third.closed && third.text.isEmpty, "a third connection over a limit of two is closed unanswered")
        // The two silent ones are closed by the idle timeout, after which a request is served again.
        let idle = readAll(a, timeoutMillis: 3000)
        XCTAssertTrue(idle.closed && idle.text.isEmpty, "a silent connection is closed after the idle timeout")
        let again = try exchange(server.endpoint.port, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        XCTAssertTrue(again.hasPrefix("HTTP/1.1 200"), again)
    }

    /// One client holding connections open takes its own share, not the listener's: a scraper or
    /// a browser from another address is still answered.
    func testOneSourceCannotTakeEveryConnection() throws {
        let server = try HTTPServer(
            bind: loopback,
            routes: ["/": { HTTPAnswer(contentType: "text/plain", text: "x") }],
            limits: HTTPServerLimits(maxConnections: 8, maxConnectionsPerSource: 2, idleTimeout: .seconds(10)),
            logger: logger)
        defer { server.stop() }
        let held = try (0..<2).map { _ in try connectTo(server.endpoint.port) }
        defer { held.forEach { close($0) } }
        let third = try connectTo(server.endpoint.port)
        defer { close(third) }
        send(third, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        let refused = readAll(third, timeoutMillis: 2000)
        XCTAssertTrue(refused.closed && refused.text.isEmpty, "a third connection from 127.0.0.1 is closed unanswered")
        let other = try exchange(
            server.endpoint.port, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", from: 0x7f00_0002)
        XCTAssertTrue(other.hasPrefix("HTTP/1.1 200"), "127.0.0.2 is served meanwhile: \(other)")
    }

    func testABoundAddressInUseIsAClearError() throws {
        let server = try HTTPServer(bind: loopback, routes: [:], logger: logger)
        defer { server.stop() }
        XCTAssertThrowsError(try HTTPServer(bind: server.endpoint, routes: [:], logger: logger)) { error in
            XCTAssertTrue("\(error)".contains("cannot listen on 127.0.0.1:\(server.endpoint.port)"), "\(error)")
        }
    }

    // MARK: a blocking client, enough for a test

    /// Connects to 127.0.0.1:`port` from `source` (any 127/8 address on Linux's loopback).
    private func connectTo(_ port: UInt16, from source: UInt32 = 0x7f00_0001) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = source.bigEndian
        let bound = withUnsafePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            close(fd)
            throw POSIXFailure(errno: errno)
        }
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = port.bigEndian
        sin.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let rc = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            close(fd)
            throw POSIXFailure(errno: errno)
        }
        return fd
    }

    private func exchange(_ port: UInt16, _ request: String, from source: UInt32 = 0x7f00_0001) throws -> String {
        let fd = try connectTo(port, from: source)
        defer { close(fd) }
        send(fd, request)
        return readAll(fd, timeoutMillis: 3000).text
    }

    private func send(_ fd: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    /// Reads until the peer closes (`closed`) or the time is up.
    private func readAll(_ fd: Int32, timeoutMillis: Int32) -> (text: String, closed: Bool) {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        var closed = false
        while poll(&pfd, 1, timeoutMillis) > 0 {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 {
                closed = true
                break
            }
            out += buffer[0..<n]
        }
        return (String(decoding: out, as: UTF8.self), closed)
    }
}

private struct POSIXFailure: Error { let errno: Int32 }
