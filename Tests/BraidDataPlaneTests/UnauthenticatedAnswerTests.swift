import BraidCore
import BraidWire
import Logging
import XCTest

@testable import BraidDataPlane

#if canImport(Glibc)
import Glibc
#endif

/// The concentrator's data-connection handler on a real reactor, over loopback TCP: every way of
/// failing to authenticate gets the same bytes and a FIN, an authenticated failure keeps its own
/// code, and the pending limits reset at accept.
final class UnauthenticatedAnswerTests: XCTestCase {
    let key = [UInt8](repeating: 0x42, count: 32)
    var group: ReactorGroup!
    var forwarder: ConvertForwarder!
    var listener: Int32 = -1
    var port: UInt16 = 0
    /// A loopback port with nothing listening: where an authenticated request is sent, so that it
    /// is refused after authentication with a code of its own.
    var closedPort: UInt16 = 0

    override func setUpWithError() throws {
        var logger = Logger(label: "braid.test")
        logger.logLevel = .critical
        forwarder = ConvertForwarder(
            config: .init(
                listen: Endpoint(address: .v4(0x7f00_0001), port: 0), handshakeTimeoutNanos: 300_000_000,
                maxPending: 8, maxPendingPerSource: 4),
            keys: { [key] id in
                guard id == 0 else { throw ConvertError(.notAuthorized, "unknown key id \(id)") }
                return key
            }, logger: logger, policy: { _ in nil })
        group = try ReactorGroup(count: 1, logger: logger)
        try group.start()
        (listener, port) = try Self.makeListener()
        let (unused, free) = try Self.makeListener()
        close(unused)
        closedPort = free
    }

    override func tearDown() {
        group.stop()
        close(listener)
    }

    static func makeListener() throws -> (Int32, UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, len) == 0 && Glibc.listen(fd, 64) == 0 && getsockname(fd, $0, &len) == 0
            }
        }
        guard ok else { throw SystemError("bind/listen on 127.0.0.1", errno: errno) }
        return (fd, UInt16(bigEndian: sin.sin_port))
    }

    /// A client connected to the test listener, whose server side is handed to the forwarder as
    /// its listener would: accepted, non-blocking, on the reactor.
    func connectClient() throws -> Int32 {
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        sin.sin_port = port.bigEndian
        let rc = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else { throw SystemError("connect", errno: errno) }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let server = accept(listener, nil, nil)
        guard server >= 0 else { throw SystemError("accept", errno: errno) }
        _ = fcntl(server, F_SETFL, fcntl(server, F_GETFL) | O_NONBLOCK)
        let reactor = group.reactors[0]
        let forwarder = self.forwarder!
        reactor.execute { forwarder.accept(server, on: reactor) }
        return client
    }

    enum End: Equatable { case eof, reset, timeout }

    /// Everything the server sends until it closes, and how it closed.
    func readAll(_ fd: Int32) -> ([UInt8], End) {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buf, buf.count, 0)
            if n > 0 {
                out += buf[0..<n]
                continue
            }
            if n == 0 { return (out, .eof) }
            return (out, errno == ECONNRESET ? .reset : .timeout)
        }
    }

    func send(_ fd: Int32, _ bytes: [UInt8]) {
        let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        XCTAssertEqual(sent, bytes.count)
    }

    func sealed(keyID: UInt32 = 0, key: [UInt8]? = nil, at time: UInt64? = nil, port: UInt16? = nil) throws -> [UInt8] {
        try ConvertClientHandshake.request(
            to: Endpoint(address: .v4(0x7f00_0001), port: port ?? closedPort),
            // Bound to the address dialled, which a concentrator without `identity` answers to.
            authenticator: ConvertAuthenticator(key: key ?? self.key, keyID: keyID, identity: "127.0.0.1"),
            nowMillis: time ?? wallClockMillis(), nonce: SecureRandom.bytes(16))
    }

    /// Sends `bytes`, then half-closes (`eof`) or waits; returns what came back and how it ended.
    func exchange(_ bytes: [UInt8], eof: Bool = false) throws -> ([UInt8], End) {
        let fd = try connectClient()
        defer { close(fd) }
        if !bytes.isEmpty { send(fd, bytes) }
        if eof { shutdown(fd, Int32(SHUT_WR)) }
        return readAll(fd)
    }

    func waitUntilNothingPending() {
        let deadline = monotonicNanos() + 2_000_000_000
        while forwarder.pending.count() > 0 && monotonicNanos() < deadline { usleep(10_000) }
        XCTAssertEqual(forwarder.pending.count(), 0, "pending slots not given back")
    }

    func testEveryUnauthenticatedConnectionGetsTheSameBytesAndAFIN() throws {
        let valid = try sealed()
        let somewhere = Endpoint(address: .v4(0xc612_1402), port: 80)
        let cases: [(String, [UInt8], Bool)] = [
            ("HTTP request", Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8), false),
            ("version 2", [2] + valid.dropFirst(), false),
            ("total length 0", [1, 0, 0, 0], false),
            ("no authentication", try ConvertMessage([.connect(somewhere, tcpOptions: [])]).encode(), false),
            ("unknown key id", try sealed(keyID: 77), false),
            ("other key", try sealed(key: Array(repeating: 1, count: 32)), false),
            ("stale", try sealed(at: wallClockMillis() - 120_000), false),
            ("half a request, then EOF", Array(valid.prefix(valid.count / 2)), true),
            ("nothing, then EOF", [], true),
            ("half a request, then a stall", Array(valid.prefix(valid.count / 2)), false),
            ("nothing at all", [], false),
        ]
        for (label, bytes, eof) in cases {
            let (reply, end) = try exchange(bytes, eof: eof)
            XCTAssertEqual(reply, ConvertServerHandshake.unauthenticatedReply, label)
            XCTAssertEqual(end, .eof, label)
        }
        waitUntilNothingPending()
        let summary = try XCTUnwrap(forwarder.refusals.take())
        XCTAssertEqual(summary.total, cases.count)
        XCTAssertEqual(summary.sourcesText, "127.0.0.1 \(cases.count)")
        let reasons = [
            "version 2", "malformed 1", "no_auth 1", "unknown_key 1", "bad_mac 1", "stale 1", "truncated 2", "timeout 2",
        ]
        for reason in reasons {
            XCTAssertTrue(summary.reasonsText.contains(reason), "\(reason) not in \(summary.reasonsText)")
        }
    }

    func testAReplayGetsTheSameBytesButAnAuthenticatedFailureItsOwnCode() throws {
        let valid = try sealed()
        // Authenticated, then refused by the destination: Connection Reset (RFC 8803 code 96).
        let (first, _) = try exchange(valid)
        XCTAssertEqual(first, ConvertServerHandshake.errorReply(.connectionReset))
        let (again, end) = try exchange(valid)
        XCTAssertEqual(again, ConvertServerHandshake.unauthenticatedReply)
        XCTAssertEqual(end, .eof)
        waitUntilNothingPending()
        XCTAssertEqual(forwarder.refusals.take()?.reasonsText, "replayed 1")
    }

    func testPendingLimitsResetAtAccept() throws {
        let valid = try sealed()
        // Four stalled handshakes fill 127.0.0.1's slots (max_pending_per_source 4) ...
        var stalled: [Int32] = []
        for _ in 0..<4 {
            let fd = try connectClient()
            send(fd, Array(valid.prefix(10)))
            stalled.append(fd)
        }
        let deadline = monotonicNanos() + 1_000_000_000
        while forwarder.pending.count() < 4 && monotonicNanos() < deadline { usleep(1000) }
        XCTAssertEqual(forwarder.pending.count(), 4)
        // ... so a fifth is reset at once, before anything is read from it (a send could race the
        // reset and take its error, so this one only listens).
        let fifth = try connectClient()
        let (reply, end) = readAll(fifth)
        close(fifth)
        XCTAssertEqual(reply, [])
        XCTAssertEqual(end, .reset)
        // The stalled ones are answered at the timeout, and their slots come back.
        for fd in stalled {
            let (r, e) = readAll(fd)
            XCTAssertEqual(r, ConvertServerHandshake.unauthenticatedReply)
            XCTAssertEqual(e, .eof)
            close(fd)
        }
        waitUntilNothingPending()
        let summary = try XCTUnwrap(forwarder.refusals.take())
        XCTAssertEqual(summary.reasonsText, "timeout 4, max_pending_per_source 1")
        // With the slots back, the source is served again (and refused after authentication).
        let (served, _) = try exchange(try sealed())
        XCTAssertEqual(served, ConvertServerHandshake.errorReply(.connectionReset))
    }
}
