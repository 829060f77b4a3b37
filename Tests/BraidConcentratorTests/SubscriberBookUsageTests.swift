import BraidConfig
import BraidStore
import BraidWire
import XCTest

@testable import BraidConcentrator
@testable import BraidDataPlane

/// The accounting timer's reading of the relays' meters: each usage row has the bytes since the
/// last one, while the meters themselves (status, metrics) keep growing.
final class SubscriberBookUsageTests: XCTestCase {
    let sessionKey = [UInt8](repeating: 0x17, count: ControlMessage.SessionGrant.keySize)

    func book() throws -> SubscriberBook {
        let text = """
            config concentrator 'main'
            \toption ca '/ca.crt'
            \toption cert '/conc.crt'
            \toption key '/conc.key'

            config class 'standard'

            config subscriber 'cpe_1'
            \toption class 'standard'
            """
        var reader = BraidConfigReader(package: try UCIParser.parse(text, file: "braid.conf"))
        let book = SubscriberBook(config: try reader.concentrator(), presharedKey: nil)
        _ = try book.install(id: 9, key: sessionKey, notAfterMillis: UInt64.max / 2, owner: "cpe_1")
        return book
    }

    func meter(_ book: SubscriberBook) throws -> ByteMeter {
        guard case .admit(let g) = book.admit(keyID: 9) else { throw XCTSkip("not admitted") }
        return try XCTUnwrap(g.meter)
    }

    func testUsageIsTheDifferenceSinceTheLastReading() throws {
        let book = try book()
        let m = try meter(book)
        m.add(up: 1000)
        m.add(down: 5000)
        XCTAssertEqual(book.takeUsage()["cpe_1"], Traffic(up: 1000, down: 5000))
        XCTAssertNil(book.takeUsage()["cpe_1"], "nothing moved since: no row")
        m.add(up: 7)
        XCTAssertEqual(book.takeUsage()["cpe_1"], Traffic(up: 7, down: 0))
        // The meter itself only grows: status and metrics still see every byte.
        XCTAssertEqual(m.up, 1007)
        XCTAssertEqual(book.statusViews(configured: ["cpe_1"]).first?.bytes.down, 5000)
    }

    func testUsageOfASubscriberTheStoreRemoved() throws {
        let book = try book()
        let m = try meter(book)
        m.add(down: 300)
        book.update(SubscriberDirectory(classes: [], subscribers: []))
        // Bytes its sessions moved still go into the next row, once.
        XCTAssertEqual(book.takeUsage()["cpe_1"], Traffic(up: 0, down: 300))
        XCTAssertNil(book.takeUsage()["cpe_1"])
    }

    func testStatusListsTheStoresSubscribers() throws {
        let book = try book()
        book.update(
            SubscriberDirectory(
                classes: [ServiceClass(name: "gold")],
                subscribers: [Subscriber(name: "cpe_9", serviceClass: "gold", enabled: true)]))
        let names = book.statusViews(configured: ["cpe_1"]).map(\.name)
        XCTAssertEqual(names, ["cpe_9"], "the file's subscribers are not used with a store")
    }
}
