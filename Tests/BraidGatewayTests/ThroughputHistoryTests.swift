import XCTest

@testable import BraidGateway

/// The status page's graphs: rates from counter samples at known instants, a bounded window,
/// and gaps instead of made-up numbers.
final class ThroughputHistoryTests: XCTestCase {
    let second: UInt64 = 1_000_000_000

    func testRatesAreBitsPerSecondBetweenSamples() {
        var h = ThroughputHistory(capacity: 10)
        h.record(nanos: 10 * second, counters: [("dsl", 1000, 0)])
        // Half a second later: 500 bytes is 8000 bit/s.
        h.record(nanos: 10 * second + second / 2, counters: [("dsl", 1500, 125_000)])
        let r = h.rates(of: "dsl")
        XCTAssertEqual(r.tx, [8000])
        XCTAssertEqual(r.rx, [2_000_000])
    }

    func testWindowKeepsCapacityRates() {
        var h = ThroughputHistory(capacity: 3)
        for i in 0..<10 { h.record(nanos: UInt64(i) * second, counters: [("dsl", UInt64(i) * 1000, 0)]) }
        XCTAssertEqual(h.samples.count, 4)
        XCTAssertEqual(h.rates(of: "dsl").tx, [8000, 8000, 8000])
        XCTAssertEqual(h.generation, 10)
    }

    /// A device recreated (counter back to zero) or an uplink added by a reload has no rate
    /// for that interval rather than a huge or negative one.
    func testGapsForResetCountersAndNewUplinks() {
        var h = ThroughputHistory(capacity: 10)
        h.record(nanos: 0, counters: [("dsl", 5000, 5000)])
        h.record(nanos: second, counters: [("dsl", 100, 6000), ("lte", 0, 0)])
        h.record(nanos: 2 * second, counters: [("dsl", 200, 7000), ("lte", 1000, 0)])
        XCTAssertEqual(h.rates(of: "dsl").tx, [nil, 800])
        XCTAssertEqual(h.rates(of: "dsl").rx, [8000, 8000])
        XCTAssertEqual(h.rates(of: "lte").tx, [nil, 8000])
        XCTAssertEqual(h.rates(of: "gone").tx, [nil, nil])
    }

    func testJSON() {
        var h = ThroughputHistory(capacity: 10)
        XCTAssertEqual(h.json(names: ["dsl"]), #"{"ages_ms":[],"uplinks":[{"name":"dsl","tx_bps":[],"rx_bps":[]}]}"#)
        h.record(nanos: 0, counters: [("dsl", 0, 0)])
        h.record(nanos: second, counters: [("dsl", 1000, 10)])
        h.record(nanos: 2 * second, counters: [("dsl", 3000, 10)])
        XCTAssertEqual(
            h.json(names: ["dsl", "q\"x"]),
            #"{"ages_ms":[1000,0],"uplinks":[{"name":"dsl","tx_bps":[8000,16000],"rx_bps":[80,0]},"#
                + #"{"name":"q\"x","tx_bps":[null,null],"rx_bps":[null,null]}]}"#)
    }
}
