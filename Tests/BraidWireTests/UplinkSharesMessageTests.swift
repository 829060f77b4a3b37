import BraidCore
import XCTest

@testable import BraidWire

/// Control message type 10, `uplinkShares`: codec bounds and who gets it when.
final class UplinkSharesMessageTests: XCTestCase {
    let timers = ControlTimers(pingIntervalMillis: 10_000, deadAfterMillis: 30_000, handshakeTimeoutMillis: 10_000)
    let lte20 = [UplinkShare(uplink: "lte", percent: 20)]
    let standard = ControlMessage.ClassInfo(
        name: "standard", rateDownBitsPerSecond: 0, rateUpBitsPerSecond: 0, maxSessions: 0)

    func testRoundTripsWithWireType10() throws {
        let list = [UplinkShare(uplink: "lte", percent: 20), UplinkShare(uplink: "dsl_2", percent: 100)]
        let frame = try ControlMessage.uplinkShares(list).encode()
        XCTAssertEqual(frame[1], 10)
        XCTAssertEqual(try ControlMessage.decode(frame: frame), .uplinkShares(list))
        let empty = try ControlMessage.uplinkShares([]).encode()
        XCTAssertEqual(try ControlMessage.decode(frame: empty), .uplinkShares([]))
    }

    /// A broken or hostile concentrator's list is refused with an error naming the problem; the
    /// encoder refuses the same, so we never send what a gateway would refuse.
    func testRefusesWhatItCannotCarry() throws {
        func frame(_ payload: [UInt8]) -> [UInt8] {
            [1, 10, UInt8(payload.count >> 8), UInt8(payload.count & 0xff)] + payload
        }
        let cases: [([UInt8], String)] = [
            ([1, 3] + Array("lte".utf8) + [101], "is not UPLINK=0..100"),
            ([1, 3] + Array("l-e".utf8) + [20], "is not UPLINK=0..100"),
            ([1, 0, 20], "is not UPLINK=0..100"),
            ([2, 3] + Array("lte".utf8) + [20, 3] + Array("lte".utf8) + [30], "named twice"),
            ([9] + Array(repeating: 0, count: 9), "count 9 exceeds 8"),
            ([1, 3] + Array("lte".utf8), "percent[0]"),
            ([1, 3] + Array("lte".utf8) + [20, 0], "trailing bytes"),
        ]
        for (payload, expected) in cases {
            XCTAssertThrowsError(try ControlMessage.decode(frame: frame(payload)), "\(payload)") { error in
                XCTAssertTrue("\(error)".contains(expected), "\(error) should contain \(expected)")
            }
        }
        let nine = (0..<9).map { UplinkShare(uplink: "u\($0)", percent: 10) }
        XCTAssertThrowsError(try ControlMessage.uplinkShares(nine).encode())
        XCTAssertThrowsError(try ControlMessage.uplinkShares([UplinkShare(uplink: "lte", percent: 150)]).encode())
    }

    func testParsesTheClassOptionForm() {
        XCTAssertEqual(UplinkShare("lte=20"), UplinkShare(uplink: "lte", percent: 20))
        XCTAssertEqual(UplinkShare("LTE_2=0"), UplinkShare(uplink: "LTE_2", percent: 0))
        for bad in ["lte", "=20", "lte=", "lte=101", "lte=-1", "lte=2x", "l te=20", "lte=20=3", "lte=0020"] {
            XCTAssertNil(UplinkShare(bad), bad)
        }
    }

    /// A gateway that names version 3 gets the class's shares after the class, and again on a
    /// class update; an empty list is sent too, so a removed share is cleared.
    func testSentAfterTheClassAndOnEveryUpdate() {
        var config = ConcentratorControlSession.Configuration(timers: timers, serviceClass: standard)
        config.uplinkShares = lte20
        var l = ControlLink(gateway: .init(software: "braid-test", timers: timers), concentrator: config)
        l.connect()
        XCTAssertEqual(l.gatewayClasses, [standard])
        XCTAssertEqual(l.gatewayShares, [lte20])
        l.concentratorDo(l.concentrator.updateClass(standard, uplinkShares: []))
        l.pump()
        XCTAssertEqual(l.gatewayShares, [lte20, []])
        XCTAssertNil(l.gatewayClosed)
    }

    /// A gateway of protocol 2 (addresses, no shares) would close the channel on type 10: it gets none.
    func testOlderGatewaysGetNoShares() throws {
        var config = ConcentratorControlSession.Configuration(timers: timers, serviceClass: standard)
        config.uplinkShares = lte20
        var c = ConcentratorControlSession(configuration: config, keys: CountingKeySource())
        _ = c.start(nowMillis: 0)
        let hello = try ControlMessage.hello(.init(protocolVersion: 2, software: "old")).encode()
        var sent = c.receive(hello, nowMillis: 1)
        sent += c.updateClass(standard, uplinkShares: lte20)
        let types = sent.compactMap { a -> ControlMessage.MessageType? in
            if case .send(let f) = a { return try? ControlMessage.decode(frame: f).type }
            return nil
        }
        XCTAssertEqual(types, [.sessionGrant, .classInfo, .classInfo])
    }

    func testBeforeTheFirstGrantIsAProtocolError() throws {
        var g = GatewayControlSession(configuration: .init(software: "t", timers: timers))
        _ = g.start(nowMillis: 0)
        let actions = g.receive(try ControlMessage.uplinkShares(lte20).encode(), nowMillis: 1)
        XCTAssertFalse(actions.contains { if case .applyUplinkShares = $0 { true } else { false } })
        XCTAssertNotNil(g.closeReason)
    }
}
