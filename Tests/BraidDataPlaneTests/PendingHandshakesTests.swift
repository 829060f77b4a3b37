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

    /// Admits `holder` from `source`; its ticket, or nil when refused.
    @discardableResult
    func admit(
        _ slots: inout PendingSlots<String>, _ source: String, _ holder: String = "", total: Int, perSource: Int
    ) -> (ticket: UInt64?, evicted: String?, refusal: String?) {
        switch slots.admit(block(source), holder: holder, maxTotal: total, maxPerSource: perSource) {
        case .admitted(let t, let e): return (t, e, nil)
        case .overTotal: return (nil, nil, "overTotal")
        case .overSource: return (nil, nil, "overSource")
        }
    }

    func testLimitsPerSource() {
        var slots = PendingSlots<String>()
        var tickets: [UInt64] = []
        for _ in 0..<2 { tickets.append(admit(&slots, "198.18.1.1", total: 4, perSource: 2).ticket!) }
        XCTAssertEqual(admit(&slots, "198.18.1.1", total: 4, perSource: 2).refusal, "overSource")
        XCTAssertEqual(slots.total, 2)
        XCTAssertEqual(slots.count(from: block("198.18.1.1")), 2)
        slots.release(tickets[0])
        XCTAssertNotNil(admit(&slots, "198.18.1.1", total: 4, perSource: 2).ticket)
        slots.release(tickets[1])
        slots.release(tickets[1])  // twice (a bug elsewhere, or an eviction raced): nothing more
        XCTAssertEqual(slots.total, 1)
    }

    /// When every slot is taken the newcomer gets one: the oldest handshake of the heaviest source
    /// gives way, and only a newcomer from the heaviest source itself is refused.
    func testFullEvictsTheOldestOfTheHeaviestSource() {
        var slots = PendingSlots<String>()
        for i in 0..<3 { admit(&slots, "2001:db8:66:1::1", "flood-\(i)", total: 4, perSource: 8) }
        admit(&slots, "198.18.1.2", "gateway-0", total: 4, perSource: 8)
        let newcomer = admit(&slots, "198.18.2.2", "gateway-1", total: 4, perSource: 8)
        XCTAssertNotNil(newcomer.ticket)
        XCTAssertEqual(newcomer.evicted, "flood-0", "the oldest of the heaviest source gives way")
        XCTAssertEqual(slots.total, 4)
        // The flood's own next connection finds its source the heaviest: refused, nobody evicted.
        XCTAssertEqual(admit(&slots, "2001:db8:66:1::2", total: 4, perSource: 8).refusal, "overTotal")
        XCTAssertEqual(slots.count(from: block("2001:db8:66:1::1")), 2)
    }

    /// Spread thin over many /64s of one /48, or many /48s of one /32, a flood still weighs as one
    /// at the level above; an IPv4 flood the same over /24s of one /16.
    func testSpreadingOverPrefixesDoesNotHelp() {
        for flood in [(0..<64).map { "2001:db8:66:\($0)::1" }, (0..<64).map { "2001:db8:\($0 + 100)::1" },
            (0..<64).map { "198.19.\($0).1" }]
        {
            var slots = PendingSlots<String>()
            admit(&slots, "198.18.1.2", "gateway-0", total: 66, perSource: 8)
            for (i, source) in flood.enumerated() { admit(&slots, source, "flood-\(i)", total: 66, perSource: 8) }
            admit(&slots, "198.18.1.2", "gateway-1", total: 66, perSource: 8)
            for i in 2..<10 {
                let r = admit(&slots, "198.18.1.2", "gateway-\(i)", total: 66, perSource: 16)
                XCTAssertNotNil(r.ticket, "\(flood[0]): gateway session \(i) refused")
                XCTAssertTrue(r.evicted?.hasPrefix("flood-") == true, "\(flood[0]): evicted \(r.evicted ?? "nothing")")
            }
        }
    }

    /// A subscriber's source that has the most pending, under a full table of lighter sources, is
    /// the one refused: evicting its own kind would change nothing but which of its connections fail.
    func testAHeavySubscriberIsNotFavoured() {
        var slots = PendingSlots<String>()
        for i in 0..<4 { admit(&slots, "198.18.1.2", "gateway-\(i)", total: 6, perSource: 8) }
        admit(&slots, "198.18.5.1", total: 6, perSource: 8)
        admit(&slots, "198.18.6.1", total: 6, perSource: 8)
        XCTAssertEqual(admit(&slots, "198.18.1.2", total: 6, perSource: 8).refusal, "overTotal")
        XCTAssertEqual(admit(&slots, "198.18.7.1", total: 6, perSource: 8).evicted, "gateway-0")
    }

    /// Slots released out of order leave their tickets in the source's queue until met; the queue
    /// is compacted, so a busy source that never drains does not grow it without bound.
    func testChurnKeepsTheTableSmall() {
        var slots = PendingSlots<String>()
        var live: [UInt64] = []
        for i in 0..<100_000 {
            live.append(admit(&slots, "198.18.1.2", "s\(i)", total: 64, perSource: 64).ticket!)
            if live.count > 10 { slots.release(live.remove(at: 1)) }  // the oldest one stays pending
        }
        XCTAssertEqual(slots.total, 10)
        XCTAssertEqual(slots.sources, 1)
        XCTAssertLessThanOrEqual(slots.queuedTickets, 2 * 10 + 8)
        for t in live { slots.release(t) }
        XCTAssertEqual(slots.total, 0)
        XCTAssertEqual(slots.sources, 0, "sources without a pending handshake are forgotten")
        XCTAssertEqual(slots.queuedTickets, 0)
    }

    func testHeaviestTally() {
        var tally = HeaviestTally<String>()
        XCTAssertNil(tally.heaviest)
        for k in ["a", "b", "b", "c", "c", "c"] { tally.add(k) }
        XCTAssertEqual(tally.heaviest, "c")
        XCTAssertEqual(tally.maxCount, 3)
        tally.remove("c")
        tally.remove("c")
        XCTAssertEqual(tally.maxCount, 2)
        XCTAssertEqual(tally.heaviest, "b")
        for k in ["a", "b", "b", "c", "x"] { tally.remove(k) }
        XCTAssertTrue(tally.isEmpty)
        XCTAssertEqual(tally.maxCount, 0)
    }

    /// The wrapper the reactors share: the same policy behind a lock.
    func testSharedTableCountsPerSource() {
        let pending = PendingHandshakes<Int>()
        guard case .admitted(let t, nil) = pending.admit(block("198.18.1.1"), holder: 1, maxTotal: 2, maxPerSource: 1)
        else { return XCTFail() }
        guard case .overSource = pending.admit(block("198.18.1.1"), holder: 2, maxTotal: 2, maxPerSource: 1)
        else { return XCTFail() }
        XCTAssertEqual(pending.count(), 1)
        XCTAssertEqual(pending.count(from: block("198.18.1.1")), 1)
        pending.release(t)
        XCTAssertEqual(pending.count(), 0)
        XCTAssertEqual(pending.sources, 0)
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

extension PendingHandshakesTests {
    /// The attack of the hardening issue, scaled down: 16 /64s of one /48 hold every pending slot
    /// with idle connections. A subscriber's new session from elsewhere must still get a slot.
    func testManySlash64sCannotTakeEverySlot() {
        var slots = PendingSlots<String>()
        for net in 0..<16 {
            for i in 0..<64 {
                let r = admit(&slots, "2001:db8:ff:\(net)::1", "flood", total: 1024, perSource: 64)
                XCTAssertNotNil(r.ticket, "\(i)")
            }
        }
        let gateway = admit(&slots, "198.18.1.2", "gateway", total: 1024, perSource: 64)
        XCTAssertNotNil(gateway.ticket, "the subscriber's gateway is refused")
        XCTAssertEqual(gateway.evicted, "flood")
    }
}
