import BraidCore
import BraidWire
import XCTest

@testable import BraidDataPlane

final class PendingHandshakesTests: XCTestCase {
    func block(_ text: String) -> SourceBlock { SourceBlock(IPAddress(text)!) }

    func testSourceBlocksAreIPv4AddressesAndIPv6Slash64s() {
        XCTAssertEqual(block("198.18.1.1").description, "198.18.1.1")
        XCTAssertNotEqual(block("198.18.1.1"), block("198.18.1.2"))
        // One /64 is one source however many addresses its holder uses.
        XCTAssertEqual(block("2001:db8:10::1"), block("2001:db8:10::ffff:1"))
        XCTAssertEqual(block("2001:db8:10::1").description, "2001:db8:10::/64")
        XCTAssertNotEqual(block("2001:db8:10::1"), block("2001:db8:10:1::1"))
        // An IPv4 address and the IPv6 /64 with the same bits are different sources.
        XCTAssertNotEqual(SourceBlock(ipv4: 1), SourceBlock(ipv6Prefix: 1))
        // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; IPAddress unmaps them already.
        let mapped = IPAddress(mappedIPv6Bytes: IPAddress("198.18.1.1")!.mappedIPv6Bytes)!
        XCTAssertEqual(SourceBlock(mapped), block("198.18.1.1"))
    }

    func testLimitsInTotalAndPerSource() {
        let pending = PendingHandshakes()
        let a = block("198.18.1.1")
        let b = block("198.18.2.1")
        let c = block("2001:db8:10::5")
        XCTAssertEqual(pending.admit(a, maxTotal: 4, maxPerSource: 2), .admitted)
        XCTAssertEqual(pending.admit(a, maxTotal: 4, maxPerSource: 2), .admitted)
        XCTAssertEqual(pending.admit(a, maxTotal: 4, maxPerSource: 2), .overSource)
        XCTAssertEqual(pending.admit(b, maxTotal: 4, maxPerSource: 2), .admitted)
        XCTAssertEqual(pending.admit(c, maxTotal: 4, maxPerSource: 2), .admitted)
        XCTAssertEqual(pending.admit(block("2001:db8:20::5"), maxTotal: 4, maxPerSource: 2), .overTotal)
        XCTAssertEqual(pending.count(), 4)
        XCTAssertEqual(pending.count(from: a), 2)
        pending.release(a)
        XCTAssertEqual(pending.admit(a, maxTotal: 4, maxPerSource: 2), .admitted)
        for s in [a, a, b, c] { pending.release(s) }
        XCTAssertEqual(pending.count(), 0)
        XCTAssertEqual(pending.sources, 0, "sources without a pending handshake are forgotten")
        // A release without an admission (a bug elsewhere) does not go negative.
        pending.release(a)
        XCTAssertEqual(pending.count(), 0)
    }

    func testTallySummarisesAndStartsAgain() {
        let tally = RefusalTally<RefusalReason>(maxSources: 3)
        XCTAssertNil(tally.take())
        for _ in 0..<5 { tally.record(.timeout, from: block("198.18.1.1")) }
        for _ in 0..<3 { tally.record(.maxPendingPerSource, from: block("198.18.1.1")) }
        tally.record(.request(.badMAC), from: block("2001:db8:10::1"))
        tally.record(.request(.badMAC), from: block("2001:db8:10::2"))
        tally.record(.request(.malformed), from: block("198.18.3.1"))
        tally.record(.request(.malformed), from: block("198.18.9.9"))  // a fourth source: counted, not named
        let s = tally.take(top: 2)
        XCTAssertEqual(s?.total, 12)
        XCTAssertEqual(s?.reasonsText, "timeout 5, max_pending_per_source 3, bad_mac 2, malformed 2")
        XCTAssertEqual(s?.sourcesText, "198.18.1.1 8, 2001:db8:10::/64 2, +1 more, 1 from sources not tracked")
        XCTAssertNil(tally.take(), "counts start again after a summary")
    }
}
