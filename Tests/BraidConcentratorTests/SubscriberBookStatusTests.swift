import BraidConfig
import BraidDataPlane
import BraidStatus
import BraidWire
import XCTest

@testable import BraidConcentrator

/// What the concentrator's status shows of a subscriber: its control channels, its sessions, and
/// bytes in a meter that every session of it shares and that outlives reloads.
final class SubscriberBookStatusTests: XCTestCase {
    let sessionKey = [UInt8](repeating: 0x17, count: ControlMessage.SessionGrant.keySize)
    let notAfter = UInt64.max / 2

    func config() -> ConcentratorConfig {
        let text = """
            config concentrator 'main'
            \toption ca '/ca.crt'
            \toption cert '/conc.crt'
            \toption key '/conc.key'

            config class 'standard'

            config subscriber 'cpe_1'
            \toption class 'standard'
            """
        var reader = BraidConfigReader(package: try! UCIParser.parse(text, file: "braid.conf"))
        return try! reader.concentrator()
    }

    func grant(_ a: Admission) -> SessionGrant? {
        if case .admit(let g) = a { return g }
        return nil
    }

    func view(_ book: SubscriberBook, _ name: String = "cpe_1") -> SubscriberStatus? {
        book.statusViews(configured: ["cpe_1"]).first { $0.name == name }
    }

    func testControlChannelStates() throws {
        let book = SubscriberBook(config: config(), presharedKey: nil)
        XCTAssertEqual(view(book)?.control.state, "never")
        let a = ObjectIdentifier(NSObjectLike())
        book.channelOpened(a, subscriber: "cpe_1", from: "198.18.1.2:40000")
        book.channelGranted(a, key: 77)
        var v = try XCTUnwrap(view(book))
        XCTAssertEqual(v.control.state, "up")
        XCTAssertEqual(v.control.key, 77)
        XCTAssertEqual(v.control.from, "198.18.1.2:40000")
        XCTAssertEqual(v.control.channels, 1)
        XCTAssertEqual(book.channelCount, 1)
        book.channelClosed(a)
        v = try XCTUnwrap(view(book))
        XCTAssertEqual(v.control.state, "down")
        XCTAssertNotNil(v.control.since)
        XCTAssertNil(v.control.key)
        XCTAssertEqual(book.channelCount, 0)
    }

    func testSessionsShareOneMeterThatOutlivesAReload() throws {
        let book = SubscriberBook(config: config(), presharedKey: nil)
        _ = try book.install(id: 9, key: sessionKey, notAfterMillis: notAfter, owner: "cpe_1")
        let first = try XCTUnwrap(grant(book.admit(keyID: 9)))
        let second = try XCTUnwrap(grant(book.admit(keyID: 9)))
        XCTAssertTrue(first.meter === second.meter)
        XCTAssertEqual(view(book)?.sessions, 2)
        XCTAssertEqual(view(book)?.serviceClass, "standard")
        // Removed by a reload: still listed, as removed, with the same meter.
        var removed = config()
        removed.subscribers = []
        book.update(removed)
        let v = try XCTUnwrap(book.statusViews(configured: []).first { $0.name == "cpe_1" })
        XCTAssertEqual(v.config, "removed")
        let again = SubscriberBook(config: removed, presharedKey: nil)
        XCTAssertNil(again.statusViews(configured: []).first { $0.name == "cpe_1" }, "never counted: not listed")
    }

    func testRatesFromTwoSamples() throws {
        let book = SubscriberBook(config: config(), presharedKey: nil)
        _ = try book.install(id: 9, key: sessionKey, notAfterMillis: notAfter, owner: "cpe_1")
        XCTAssertNotNil(grant(book.admit(keyID: 9))?.meter)
        book.sampleRates(nowNanos: 1_000_000_000)
        book.sampleRates(nowNanos: 2_000_000_000)
        XCTAssertEqual(view(book)?.rateBps, ByteRate(up: 0, down: 0))
    }
}

/// Something with an identity, for channel ids.
final class NSObjectLike {}
