import BraidCore
import Dispatch
import Logging
import XCTest

@testable import BraidDataPlane

#if canImport(Glibc)
import Glibc
#endif

/// The relay on a real reactor between a loopback TCP client and a loopback MPTCP server, the
/// gateway's two sides: megabytes both ways at once through receivers with small buffers, so each
/// direction keeps stopping on its sink and must be woken by that sink alone (the relay no longer
/// tries a direction again on every event of the other socket), and the MPTCP side's sized reads
/// grow from one page to the pipe's size. Every byte is compared, and both half-closes arrive.
final class SpliceRelayTests: XCTestCase {
    /// IPPROTO_MPTCP (linux/in.h), which Glibc's headers may not name.
    static let ipprotoMPTCP: Int32 = 262
    var group: ReactorGroup!

    override func setUpWithError() throws {
        var logger = Logger(label: "braid.test")
        logger.logLevel = .critical
        group = try ReactorGroup(count: 1, logger: logger)
        try group.start()
    }

    override func tearDown() {
        group.stop()
    }

    func testBothWaysThroughSmallReceiversArriveWhole() throws {
        try relay(up: Self.pattern(3 << 20, seed: 1), down: Self.pattern(3 << 20, seed: 2))
    }

    /// Relays `up` from a TCP client to an MPTCP server and `down` back, at the same time, each
    /// receiver reading 2 KiB at a time through a 4 KiB receive buffer; checks every byte and
    /// that the relay finishes once both sides half-closed.
    func relay(up: [UInt8], down: [UInt8]) throws {
        let (lanClient, lanSide) = try Self.connectedPair(proto: Int32(IPPROTO_TCP), receiveBuffer: 4096)
        let (mptcpSide, origin) = try Self.connectedPair(proto: Self.ipprotoMPTCP, receiveBuffer: 4096)
        defer {
            close(lanClient)
            close(origin)
        }
        for fd in [lanSide, mptcpSide] { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        let ended = DispatchSemaphore(value: 0)
        var end: RelayEnd?
        let reactor = group.reactors[0]
        reactor.execute {
            let relay = SpliceRelay(
                reactor: reactor, a: lanSide, b: mptcpSide, connecting: false, counters: SessionCounters(),
                mptcp: (a: false, b: true))
            relay.onEnd = { _, e in
                end = e
                ended.signal()
            }
            relay.start(connectTimeoutNanos: 5_000_000_000)
        }
        let done = DispatchGroup()
        var gotUp: [UInt8] = []
        var gotDown: [UInt8] = []
        DispatchQueue.global().async(group: done) { Self.sendAll(lanClient, up) }
        DispatchQueue.global().async(group: done) { Self.sendAll(origin, down) }
        DispatchQueue.global().async(group: done) { gotUp = Self.readToEnd(origin) }
        DispatchQueue.global().async(group: done) { gotDown = Self.readToEnd(lanClient) }
        // A bound, not a measurement: a relay that lost a wake-up stalls until the readers' timeout.
        XCTAssertEqual(done.wait(timeout: .now() + 60), .success, "the transfers did not finish within 60 s")
        XCTAssertEqual(ended.wait(timeout: .now() + 10), .success, "the relay did not end after both half-closes")
        XCTAssertEqual(gotUp.count, up.count)
        XCTAssertTrue(gotUp == up, "bytes towards the MPTCP side differ")
        XCTAssertEqual(gotDown.count, down.count)
        XCTAssertTrue(gotDown == down, "bytes towards the TCP side differ")
        XCTAssertEqual(end.map { "\($0)" }, "finished")
    }

    /// A sized source starts at one page, grows fourfold on full reads, follows short ones, and
    /// stays within the pipe.
    func testSizedReadsGrowOnFullReadsAndFollowShortOnes() {
        XCTAssertEqual(Flow().readHint, 4096)
        XCTAssertEqual(Flow.nextRead(after: 4096, asked: 4096, limit: 262_144), 16384)
        XCTAssertEqual(Flow.nextRead(after: 65536, asked: 65536, limit: 262_144), 262_144)
        XCTAssertEqual(Flow.nextRead(after: 262_144, asked: 262_144, limit: 262_144), 262_144)
        XCTAssertEqual(Flow.nextRead(after: 30000, asked: 262_144, limit: 262_144), 60000)
        XCTAssertEqual(Flow.nextRead(after: 5, asked: 4096, limit: 262_144), 4096)
    }

    /// Bytes of a simple generator: different at every offset, so a lost or repeated chunk shows.
    static func pattern(_ count: Int, seed: UInt64) -> [UInt8] {
        var x = seed &* 0x9E37_79B9_7F4A_7C15
        return (0..<count).map { _ in
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: x >> 33)
        }
    }

    /// Sends everything (blocking), then half-closes.
    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, min(bytes.count - sent, 8192), 0) }
            if n <= 0 { return }
            sent += n
        }
        shutdown(fd, Int32(SHUT_WR))
    }

    /// Reads in small pieces until end of stream (blocking, with a receive timeout).
    static func readToEnd(_ fd: Int32) -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 2048)
        while true {
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { return out }
            out += buf[0..<n]
        }
    }

    /// A connected pair over loopback of protocol `proto`: the dialling side (small receive
    /// buffer) and the accepted side (small receive buffer from the listener), both blocking
    /// with 30 s timeouts.
    static func connectedPair(proto: Int32, receiveBuffer: Int32) throws -> (Int32, Int32) {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), proto)
        guard listener >= 0 else { throw SystemError("socket(protocol \(proto))", errno: errno) }
        defer { close(listener) }
        var size = receiveBuffer
        setsockopt(listener, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let listening = withUnsafeMutablePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, len) == 0 && listen(listener, 4) == 0 && getsockname(listener, $0, &len) == 0
            }
        }
        guard listening else { throw SystemError("bind/listen on 127.0.0.1", errno: errno) }
        let dialler = socket(AF_INET, Int32(SOCK_STREAM.rawValue), proto)
        setsockopt(dialler, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        let connected = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(dialler, $0, len) == 0 }
        }
        guard connected else { throw SystemError("connect to 127.0.0.1", errno: errno) }
        let accepted = accept(listener, nil, nil)
        guard accepted >= 0 else { throw SystemError("accept", errno: errno) }
        var tv = timeval(tv_sec: 30, tv_usec: 0)
        for fd in [dialler, accepted] {
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        }
        return (dialler, accepted)
    }
}
