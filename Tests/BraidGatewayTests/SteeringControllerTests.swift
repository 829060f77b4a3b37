import BraidConfig
import XCTest

@testable import BraidGateway

/// SteeringController against a small model of the uplinks: each tick, bonded demand is split
/// over the uplinks not held back in proportion to their capacity (as the kernel's scheduler
/// does, by send-queue linger time), up to what each can carry; a full uplink's round trip grows
/// by its queue.
final class SteeringControllerTests: XCTestCase {
    let tick = SteeringController.tickNanos
    let ms: UInt64 = 1_000_000

    struct Link {
        var name: String
        var role: UplinkRole
        var share: UInt8? = nil
        var up = true
        /// Bytes per second it can carry.
        var capacity: Double
        var bytes: UInt64 = 0
        var rtt: UInt64 = 5_000_000
        var carried: UInt64 = 0
    }

    /// Runs `seconds` of demand `demand` (bytes/s) through the model; returns what each uplink
    /// carried meanwhile (bonded bytes only).
    @discardableResult
    func run(
        _ c: inout SteeringController, _ links: inout [Link], demand: Double, seconds: Double, now: inout UInt64,
        held: inout Set<String>
    ) -> [String: UInt64] {
        var carried: [String: UInt64] = [:]
        for _ in 0..<Int(seconds * 4) {
            now += tick
            // Data goes where the previous decision let it, as on the wire.
            let open = links.indices.filter { links[$0].up && !held.contains(links[$0].name) && links[$0].role != .off }
            let room = open.reduce(0.0) { $0 + links[$1].capacity }
            for i in links.indices {
                var rate = 0.0
                if open.contains(i), room > 0 {
                    rate = min(links[i].capacity, demand * links[i].capacity / room)
                }
                let full = rate >= links[i].capacity * 0.98
                links[i].rtt = full ? 85 * ms : 5 * ms
                let b = UInt64(rate / 4)
                links[i].bytes += b
                carried[links[i].name, default: 0] += b
            }
            held = c.tick(
                links.map {
                    .init(name: $0.name, role: $0.role, share: $0.share, up: $0.up, bytes: $0.bytes, rttNanos: $0.rtt)
                }, now: now)
        }
        return carried
    }

    func office(_ lteRole: UplinkRole, lteShare: UInt8? = nil) -> [Link] {
        // 40 and 20 Mbit/s lines, a 10 Mbit/s LTE.
        [
            Link(name: "dsl", role: .active, capacity: 5_000_000),
            Link(name: "fibre", role: .active, capacity: 2_500_000),
            Link(name: "lte", role: lteRole, share: lteShare, capacity: 1_250_000),
        ]
    }

    func testOverflowStandsByWhileTheActivesHaveRoom() {
        var c = SteeringController()
        var links = office(.overflow)
        var now: UInt64 = 0
        var held: Set<String> = []
        // Under half the actives' capacity, for a minute.
        let carried = run(&c, &links, demand: 3_000_000, seconds: 60, now: &now, held: &held)
        XCTAssertEqual(c.overflow("lte"), .standby)
        XCTAssertTrue(held.contains("lte"))
        // The first tick's decision comes after the first tick's bytes.
        XCTAssertLessThan(Double(carried["lte"]!) / Double(carried.values.reduce(0, +)), 0.01)
    }

    func testOverflowCarriesWhileEveryActiveIsSaturatedThenStandsByAgain() {
        var c = SteeringController()
        var links = office(.overflow)
        var now: UInt64 = 0
        var held: Set<String> = []
        run(&c, &links, demand: 3_000_000, seconds: 10, now: &now, held: &held)
        // More than the actives can carry: LTE takes the rest.
        let busy = run(&c, &links, demand: 9_000_000, seconds: 20, now: &now, held: &held)
        XCTAssertEqual(c.overflow("lte"), .carrying)
        XCTAssertFalse(held.contains("lte"))
        let lteShare = Double(busy["lte"]!) / Double(busy.values.reduce(0, +))
        XCTAssertGreaterThan(lteShare, 0.10, "LTE carries its part once demand exceeds the actives")
        // Demand falls well within the actives: back to standby within a few seconds.
        run(&c, &links, demand: 2_000_000, seconds: 4, now: &now, held: &held)
        XCTAssertEqual(c.overflow("lte"), .standby)
        XCTAssertTrue(held.contains("lte"))
    }

    /// One saturated active uplink is not "the actives saturated": the other has room.
    func testOneFullActiveIsNotEnough() {
        var c = SteeringController()
        var now: UInt64 = 0
        var bytes: UInt64 = 0
        for i in 0..<40 {
            now += tick
            bytes += 1_000_000
            let held = c.tick(
                [
                    .init(
                        name: "dsl", role: .active, share: nil, up: true, bytes: bytes,
                        rttNanos: i < 8 ? 5 * ms : 90 * ms),
                    .init(name: "fibre", role: .active, share: nil, up: true, bytes: bytes, rttNanos: 5 * ms),
                    .init(name: "lte", role: .overflow, share: nil, up: true, bytes: 0, rttNanos: 30 * ms),
                ], now: now)
            XCTAssertTrue(held.contains("lte"))
        }
    }

    /// A round trip that grows on an idle line (another device's burst) is not saturation.
    func testAnIdleLineWithALongRoundTripIsNotSaturated() {
        var c = SteeringController()
        var now: UInt64 = 0
        for i in 0..<40 {
            now += tick
            let held = c.tick(
                [
                    .init(
                        name: "dsl", role: .active, share: nil, up: true, bytes: 100,
                        rttNanos: i < 8 ? 5 * ms : 200 * ms),
                    .init(name: "lte", role: .overflow, share: nil, up: true, bytes: 0, rttNanos: 30 * ms),
                ], now: now)
            XCTAssertTrue(held.contains("lte"))
        }
    }

    func testOverflowCarriesWhenNoActiveIsUp() {
        var c = SteeringController()
        var links = office(.overflow)
        var now: UInt64 = 0
        var held: Set<String> = []
        run(&c, &links, demand: 1_000_000, seconds: 2, now: &now, held: &held)
        XCTAssertTrue(held.contains("lte"))
        links[0].up = false
        links[1].up = false
        run(&c, &links, demand: 1_000_000, seconds: 1, now: &now, held: &held)
        XCTAssertEqual(c.overflow("lte"), .carrying)
        XCTAssertFalse(held.contains("lte"))
    }

    /// The fastest line capped at 20 % of a bulk transfer's bytes holds within a few points over
    /// each 10-second window once the first window has filled.
    func testShareHoldsTheFastestLineNearItsCap() {
        var c = SteeringController()
        var links = office(.active)
        links[0].share = 20
        var now: UInt64 = 0
        var held: Set<String> = []
        run(&c, &links, demand: 20_000_000, seconds: 10, now: &now, held: &held)
        for _ in 0..<6 {
            let carried = run(&c, &links, demand: 20_000_000, seconds: 10, now: &now, held: &held)
            let share = Double(carried["dsl"]!) * 100 / Double(carried.values.reduce(0, +))
            XCTAssertEqual(share, 20, accuracy: 3, "dsl carried \(share) %")
            XCTAssertEqual(c.share("dsl") ?? 0, 20, accuracy: 3)
        }
    }

    /// With no other uplink up, the capped one carries everything: a share limits, it does not cut off.
    func testShareDoesNotApplyWhenNoOtherUplinkIsUp() {
        var c = SteeringController()
        var links = office(.active)
        links[2].share = 20
        links[0].up = false
        links[1].up = false
        var now: UInt64 = 0
        var held: Set<String> = []
        run(&c, &links, demand: 1_000_000, seconds: 20, now: &now, held: &held)
        XCTAssertFalse(held.contains("lte"))
    }

    func testTheLowerCapApplies() {
        XCTAssertEqual(SteeringController.cap(own: nil, fromClass: nil), nil)
        XCTAssertEqual(SteeringController.cap(own: 100, fromClass: nil), nil)
        XCTAssertEqual(SteeringController.cap(own: 30, fromClass: nil), 30)
        XCTAssertEqual(SteeringController.cap(own: nil, fromClass: 20), 20)
        XCTAssertEqual(SteeringController.cap(own: 30, fromClass: 50), 30)
        XCTAssertEqual(SteeringController.cap(own: 30, fromClass: 10), 10)
    }

    /// An uplink a reload removed is forgotten; one that comes back starts over.
    func testForgetsRemovedUplinks() {
        var c = SteeringController()
        _ = c.tick([.init(name: "lte", role: .overflow, share: nil, up: true, bytes: 5, rttNanos: nil)], now: tick)
        XCTAssertNotNil(c.overflow("lte"))
        _ = c.tick([], now: 2 * tick)
        XCTAssertNil(c.overflow("lte"))
    }
}
