import BraidStore
import XCTest

final class UsageLedgerTests: XCTestCase {
    func testPeriodsBecomeRowsAndIdleSubscribersNone() {
        var l = UsageLedger()
        l.close(periodStart: 0, periodEnd: 60_000, traffic: ["a": Traffic(up: 10, down: 20), "b": Traffic()])
        XCTAssertEqual(l.rows, [UsageRow(subscriber: "a", periodStart: 0, periodEnd: 60_000, traffic: Traffic(up: 10, down: 20))])
    }

    func testAWrittenBatchGoesAFailedOneIsSentAgainUnchanged() {
        var l = UsageLedger()
        l.close(periodStart: 0, periodEnd: 1, traffic: ["a": Traffic(up: 1, down: 1)])
        l.close(periodStart: 1, periodEnd: 2, traffic: ["a": Traffic(up: 2, down: 2)])
        let first = l.nextBatch(limit: 1)
        XCTAssertEqual(first?.map(\.periodStart), [0])
        XCTAssertNil(l.nextBatch(), "one batch at a time")
        l.failed()
        XCTAssertEqual(l.nextBatch(limit: 1), first)
        l.written()
        XCTAssertEqual(l.nextBatch()?.map(\.periodStart), [1])
        l.written()
        XCTAssertNil(l.nextBatch())
    }

    /// Past the bound, waiting rows are merged per subscriber: fewer rows, the same bytes.
    func testBoundedWithoutLosingBytes() {
        var l = UsageLedger(maxRows: 10)
        var sent = Traffic()
        for i in 0..<100 {
            let t = Traffic(up: UInt64(i), down: UInt64(2 * i))
            sent.up += t.up * 2
            sent.down += t.down * 2
            l.close(periodStart: Int64(i), periodEnd: Int64(i + 1), traffic: ["a": t, "b": t])
            XCTAssertLessThanOrEqual(l.rows.count, 10)
        }
        let kept = l.pendingTraffic.values.reduce(Traffic()) { Traffic(up: $0.up + $1.up, down: $0.down + $1.down) }
        XCTAssertEqual(kept, sent)
        XCTAssertGreaterThan(l.merges, 0)
        // Period 0 moved nothing; the merged row spans from the first period with bytes.
        let a = l.rows.filter { $0.subscriber == "a" }
        XCTAssertEqual(a.first?.periodStart, 1)
        XCTAssertEqual(a.last?.periodEnd, 100)
    }

    /// A row whose write may have committed is never merged: sent again as it was, the table's key
    /// keeps it once; merged into a wider row with the same key, the other rows' bytes would be lost.
    func testUncertainRowsAreNotMerged() {
        var l = UsageLedger(maxRows: 2)
        l.close(periodStart: 0, periodEnd: 1, traffic: ["a": Traffic(up: 1)])
        _ = l.nextBatch()
        l.failed()
        l.close(periodStart: 1, periodEnd: 2, traffic: ["a": Traffic(up: 2)])
        l.close(periodStart: 2, periodEnd: 3, traffic: ["a": Traffic(up: 4)])
        XCTAssertEqual(l.rows.first, UsageRow(subscriber: "a", periodStart: 0, periodEnd: 1, traffic: Traffic(up: 1)))
        XCTAssertEqual(l.rows.count, 2)
        XCTAssertEqual(l.rows.last?.traffic.up, 6)
    }
}
