import XCTest

@testable import BraidWire

final class ControlBackoffTests: XCTestCase {
    func testCeilingDoublesUpToTheCap() {
        var backoff = Backoff(baseMillis: 500, capMillis: 60_000)
        var random = SeededRandom(state: 42)
        var ceilings: [UInt64] = []
        for _ in 0..<10 {
            ceilings.append(backoff.ceilingMillis)
            let delay = backoff.next(using: &random)
            XCTAssertLessThanOrEqual(delay, ceilings.last!)
        }
        XCTAssertEqual(ceilings, [500, 1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000])
        XCTAssertEqual(backoff.attempts, 10)
    }

    func testNoOverflowAfterManyAttempts() {
        var backoff = Backoff(baseMillis: 3, capMillis: .max)
        var random = SeededRandom(state: 1)
        for _ in 0..<200 { _ = backoff.next(using: &random) }
        XCTAssertEqual(backoff.ceilingMillis, .max)
        var capped = Backoff(baseMillis: 1000, capMillis: 1000)
        XCTAssertEqual(capped.ceilingMillis, 1000)
        _ = capped.next(using: &random)
        XCTAssertEqual(capped.ceilingMillis, 1000)
    }

    /// Full jitter: delays cover the whole range from 0 to the ceiling, so gateways that lost
    /// their concentrator together do not retry together.
    func testFullJitterSpreadsTheDelays() {
        var random = SeededRandom(state: 7)
        var delays: [UInt64] = []
        for _ in 0..<2000 {
            var backoff = Backoff(baseMillis: 1000, capMillis: 8000)
            for _ in 0..<5 { _ = backoff.next(using: &random) }
            XCTAssertEqual(backoff.ceilingMillis, 8000)
            delays.append(backoff.next(using: &random))
        }
        XCTAssertLessThanOrEqual(delays.max()!, 8000)
        XCTAssertLessThan(delays.min()!, 400)
        XCTAssertGreaterThan(delays.max()!, 7600)
        let mean = Double(delays.reduce(0, +)) / Double(delays.count)
        XCTAssertEqual(mean, 4000, accuracy: 300)
    }

    func testBoundsAreReachedAndResetStartsOver() {
        var backoff = Backoff(baseMillis: 500, capMillis: 60_000)
        // Output 1 maps to the range's lowest value (0 would be rejected and drawn again).
        var lowest = ScriptedRandom(values: [1])
        XCTAssertEqual(backoff.next(using: &lowest), 0)
        var highest = ScriptedRandom(values: [.max])
        XCTAssertEqual(backoff.next(using: &highest), 1000)
        XCTAssertEqual(backoff.next(using: &highest), 2000)
        backoff.reset()
        XCTAssertEqual(backoff.attempts, 0)
        XCTAssertEqual(backoff.next(using: &highest), 500)
    }
}
