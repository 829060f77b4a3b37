import BraidCore
import Logging
import XCTest

#if canImport(Glibc)
import Glibc
#endif

@testable import BraidDataPlane

/// The relay's half-close watch with real loopback sockets: a download whose origin has ended
/// while its client still reads the last megabytes out of the relay's socket is alive, not idle.
final class HalfClosedRelayTests: XCTestCase {
    /// A connected loopback TCP pair (client, server). `clientReceiveBuffer` is set before connect,
    /// so the window the client offers stays that small.
    private func loopbackPair(clientReceiveBuffer: Int32? = nil) throws -> (client: Int32, server: Int32) {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return try withUnsafeMutablePointer(to: &addr) { p in
            try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                var len = socklen_t(MemoryLayout<sockaddr_in>.size)
                guard bind(listener, sa, len) == 0, listen(listener, 4) == 0,
                    getsockname(listener, sa, &len) == 0
                else { throw SystemError("listen on 127.0.0.1", errno: errno) }
                let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                if var size = clientReceiveBuffer {
                    setsockopt(client, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
                }
                guard connect(client, sa, len) == 0 else { throw SystemError("connect", errno: errno) }
                let server = accept(listener, nil, nil)
                guard server >= 0 else { throw SystemError("accept", errno: errno) }
                return (client, server)
            }
        }
    }

    private func nonBlocking(_ fd: Int32) {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    /// The origin sends 2 MB and ends; the relay writes it all into the client's socket at once
    /// (a large send buffer) and the client reads it at 800 kB/s, 2.5 s, while the watch's idle
    /// bound is 1 s. Every byte arrives, in order, and the relay is not aborted. With the watch
    /// counting only the open direction's bytes, the relay reset the client after about a second.
    func testASlowReaderDrainingTheEndedDirectionIsNotIdle() throws {
        let group = try ReactorGroup(count: 1, logger: Logger(label: "test"))
        try group.start()
        defer { group.stop() }
        let reactor = group.reactors[0]

        let lan = try loopbackPair(clientReceiveBuffer: 8192)  // client: the slow reader; server: relay's a
        let wan = try loopbackPair()  // client: relay's b; server: the origin
        var sendBuffer: Int32 = 4 << 20
        setsockopt(lan.server, SOL_SOCKET, SO_SNDBUF, &sendBuffer, socklen_t(MemoryLayout<Int32>.size))
        nonBlocking(lan.server)
        nonBlocking(wan.client)

        let ended = Mutex()
        var end: String?
        reactor.execute {
            let relay = SpliceRelay(
                reactor: reactor, a: lan.server, b: wan.client, connecting: false, counters: SessionCounters(),
                halfClosedBounds: (idle: 1_000_000_000, check: 100_000_000))
            relay.onEnd = { _, how in ended.withLock { end = "\(how)" } }
            relay.start(connectTimeoutNanos: 1_000_000_000)
        }

        var payload = [UInt8](repeating: 0, count: 2 << 20)
        for i in payload.indices { payload[i] = UInt8(truncatingIfNeeded: (i &* 2_654_435_761) >> 13) }
        let sent = payload.withUnsafeBytes { p -> Int in
            var off = 0
            while off < p.count {
                let n = send(wan.server, p.baseAddress! + off, p.count - off, Int32(MSG_NOSIGNAL))
                if n <= 0 { break }
                off += n
            }
            return off
        }
        XCTAssertEqual(sent, payload.count, "the origin sent its 2 MB")
        shutdown(wan.server, Int32(SHUT_WR))

        // The slow reader: 16 KB every 20 ms, for at most 20 s.
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        let deadline = monotonicNanos() + 20_000_000_000
        var readError: Int32 = 0
        while monotonicNanos() < deadline {
            let n = chunk.withUnsafeMutableBytes { recv(lan.client, $0.baseAddress!, $0.count, 0) }
            if n == 0 { break }
            if n < 0 {
                readError = errno
                break
            }
            received += chunk[..<n]
            usleep(20_000)
        }
        XCTAssertEqual(readError, 0, "the client read to the end without an error (ECONNRESET is 104)")
        XCTAssertEqual(received.count, payload.count, "every byte reached the slow reader")
        XCTAssertTrue(received == payload, "in order, unchanged")
        XCTAssertNil(ended.withLock { end }, "the relay was not aborted while its reader drained the end")

        close(lan.client)  // the client's end: the relay finishes
        let finishDeadline = monotonicNanos() + 5_000_000_000
        while ended.withLock({ end }) == nil && monotonicNanos() < finishDeadline { usleep(10_000) }
        let how = ended.withLock { end }
        XCTAssertEqual(how.map { $0.hasPrefix("finished") }, true, "then it finished: \(how ?? "not ended")")
        close(wan.server)
    }
}
