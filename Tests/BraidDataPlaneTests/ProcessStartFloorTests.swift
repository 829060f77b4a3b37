import BraidCore
import XCTest

@testable import BraidDataPlane

/// The `before_start` floor is the process's start as the wall clock reads it now: a clock set
/// back after the start moves the floor back with it.
final class ProcessStartFloorTests: XCTestCase {
    func testTheFloorIsNowLessTheTimeSinceTheStart() {
        let fiveSecondsAgo = monotonicNanos() &- 5_000_000_000
        // Taken at a start when the wall clock was an hour ahead of what it reads now.
        let config = ConvertForwarder.Configuration(
            listen: Endpoint(address: .v4(0), port: 0), handshakeTimeoutNanos: 1,
            notBeforeMillis: wallClockMillis() + 3_600_000 - 5_000, notBeforeMonotonicNanos: fiveSecondsAgo)
        let expected = wallClockMillis() - 5_000
        XCTAssertLessThan(abs(Int64(config.currentNotBeforeMillis()) - Int64(expected)), 200)
    }

    func testWithoutAMonotonicStartTheFloorIsAsGiven() {
        let config = ConvertForwarder.Configuration(
            listen: Endpoint(address: .v4(0), port: 0), handshakeTimeoutNanos: 1, notBeforeMillis: 1234)
        XCTAssertEqual(config.currentNotBeforeMillis(), 1234)
    }
}
