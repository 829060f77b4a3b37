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

        let (reader, relayA) = try SpliceRelayTests.connectedPair(proto: Int32(IPPROTO_TCP), receiveBuffer: 8192)
        let (relayB, origin) = try SpliceRelayTests.connectedPair(proto: Int32(IPPROTO_TCP), receiveBuffer: 2 << 20)
        var sendBuffer: Int32 = 4 << 20
        setsockopt(relayA, SOL_SOCKET, SO_SNDBUF, &sendBuffer, socklen_t(MemoryLayout<Int32>.size))
        nonBlocking(relayA)
        nonBlocking(relayB)

        let ended = Mutex()
        var end: String?
        reactor.execute {
            let relay = SpliceRelay(
                reactor: reactor, a: relayA, b: relayB, connecting: false, counters: SessionCounters(),
                halfClosedBounds: (idle: 1_000_000_000, check: 100_000_000))
            relay.onEnd = { _, how in ended.withLock { end = "\(how)" } }
            relay.start(connectTimeoutNanos: 1_000_000_000)
        }

        var payload = [UInt8](repeating: 0, count: 2 << 20)
        for i in payload.indices { payload[i] = UInt8(truncatingIfNeeded: (i &* 2_654_435_761) >> 13) }
        let sent = payload.withUnsafeBytes { p -> Int in
            var off = 0
            while off < p.count {
                let n = send(origin, p.baseAddress! + off, p.count - off, Int32(MSG_NOSIGNAL))
                if n <= 0 { break }
                off += n
            }
            return off
        }
        XCTAssertEqual(sent, payload.count, "the origin sent its 2 MB")
        shutdown(origin, Int32(SHUT_WR))

        // The slow reader: 16 KB every 20 ms, for at most 20 s.
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        let deadline = monotonicNanos() + 20_000_000_000
        var readError: Int32 = 0
        while monotonicNanos() < deadline {
            let n = chunk.withUnsafeMutableBytes { recv(reader, $0.baseAddress!, $0.count, 0) }
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

        close(reader)  // the client's end: the relay finishes
        let finishDeadline = monotonicNanos() + 5_000_000_000
        while ended.withLock({ end }) == nil && monotonicNanos() < finishDeadline { usleep(10_000) }
        let how = ended.withLock { end }
        XCTAssertEqual(how.map { $0.hasPrefix("finished") }, true, "then it finished: \(how ?? "not ended")")
        close(origin)
    }
}
