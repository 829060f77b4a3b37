import XCTest

@testable import BraidDataPlane

final class TokenBucketTests: XCTestCase {
    func testLongTransferAveragesTheRate() {
        // 8 Mbit/s = 1,000,000 bytes/s; a reader wanting 256 KiB at a time, waiting when told to.
        var now: UInt64 = 0
        let bucket = TokenBucket(bitsPerSecond: 8_000_000, now: now)
        XCTAssertEqual(bucket.burst, 20_000)
        var total = 0
        while now < 10_000_000_000 {
            let n = bucket.take(upTo: 256 * 1024, now: now)
            total += n
            if n == 0 { now += max(bucket.nanosUntil(10_000, now: now), 1_000_000) }
        }
        // 10 s at the rate plus the initial burst, within a tenth of a percent.
        XCTAssertEqual(Double(total), 10_020_000, accuracy: 10_000)
    }

    func testIdleTimeBanksNoMoreThanTheBurst() {
        let bucket = TokenBucket(bitsPerSecond: 80_000_000, now: 0)  // 10 MB/s, 200 kB burst
        XCTAssertEqual(bucket.take(upTo: 1 << 30, now: 60_000_000_000), 200_000)
        XCTAssertEqual(bucket.take(upTo: 1 << 30, now: 60_000_000_000), 0)
        XCTAssertEqual(bucket.nanosUntil(100_000, now: 60_000_000_000), 10_000_001)
        bucket.refund(50_000)
        XCTAssertEqual(bucket.take(upTo: 1 << 30, now: 60_000_000_000), 50_000)
    }

    func testAReaderGetsAUsefulAmountOrNothing() {
        let bucket = TokenBucket(bitsPerSecond: 16_000_000, now: 0)  // 2 MB/s, 40 kB burst
        XCTAssertEqual(bucket.take(atLeast: 20_000, upTo: 256 * 1024, now: 0), 40_000)
        // 1 µs later 2 bytes have accrued: not worth a read (nor a 2-byte segment).
        XCTAssertEqual(bucket.take(atLeast: 20_000, upTo: 256 * 1024, now: 1_000), 0)
        XCTAssertEqual(bucket.nanosUntil(20_000, now: 1_000), 9_999_001)
        XCTAssertEqual(bucket.take(atLeast: 20_000, upTo: 256 * 1024, now: 10_000_000), 20_000)
    }
}
