import XCTest

#if canImport(Glibc)
import Glibc
#endif

@testable import BraidDataPlane

final class PipePoolTests: XCTestCase {
    private func isOpen(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) != -1 }

    /// A burst's pipes go back to the kernel once the burst is over: a pipe nobody took for a
    /// whole trim period is closed, so a soak's descriptors return to their baseline.
    func testPipesIdleForAWholePeriodAreClosed() throws {
        let pool = PipePool()
        let burst = try (0..<10).map { _ in try pool.take() }
        for p in burst { pool.give(p) }
        XCTAssertTrue(burst.allSatisfy { isOpen($0.read) && isOpen($0.write) }, "ten pipes kept for reuse")
        XCTAssertEqual(pool.trim(), 0, "the pool was empty during the burst: nothing idle a whole period yet")
        XCTAssertEqual(pool.trim(), 10, "no pipe was taken during the period since")
        XCTAssertFalse(burst.contains { isOpen($0.read) || isOpen($0.write) }, "every pipe closed")
        pool.drain()
    }

    /// Pipes in steady use stay: only as many as were never needed during the period are closed.
    func testPipesInUseDuringThePeriodAreKept() throws {
        let pool = PipePool()
        let four = try (0..<4).map { _ in try pool.take() }
        for p in four { pool.give(p) }
        pool.trim()
        // One period in which at most two pipes were in use at once: two of four were needed.
        let a = try pool.take()
        let b = try pool.take()
        pool.give(a)
        pool.give(b)
        XCTAssertEqual(pool.trim(), 2)
        XCTAssertEqual(pool.trim(), 2, "then idle for a whole period: the rest go too")
        pool.drain()
    }
}
