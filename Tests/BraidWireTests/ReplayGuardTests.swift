import BraidCore
import XCTest

@testable import BraidWire

/// The replay state is kept per key holder: one subscriber that floods fills its own share, never
/// everyone's, and no admission costs a pass over what is remembered.
final class ReplayGuardTests: XCTestCase {
    let now: UInt64 = 1_790_000_000_000

    func auth(key: UInt32, _ n: Int, at time: UInt64? = nil) -> ConvertAuthentication {
        var nonce = [UInt8](repeating: 0, count: ConvertAuthentication.nonceSize)
        for i in 0..<8 { nonce[i] = UInt8(truncatingIfNeeded: n >> (8 * i)) }
        for i in 8..<12 { nonce[i] = UInt8(truncatingIfNeeded: key >> (8 * UInt32(i - 8))) }  // unique per key
        return ConvertAuthentication(
            keyID: key, timestampMillis: time ?? now, nonce: nonce,
            mac: [UInt8](repeating: 0, count: ConvertAuthentication.macSize))
    }

    func testOneKeyHolderCannotLockOutAnother() throws {
        var replay = ReplayGuard(windowMillis: 30_000, capacity: 100)
        // Key 1 sends as many fresh requests as it likes (it holds the key, every MAC is good).
        var refused = 0
        for n in 0..<1000 {
            do { try replay.admit(auth(key: 1, n), nowMillis: now) } catch { refused += 1 }
        }
        XCTAssertGreaterThan(refused, 0, "the flooding key is limited")
        // Another subscriber's key is still admitted, many times over.
        for n in 0..<40 {
            XCTAssertNoThrow(try replay.admit(auth(key: 2, n), nowMillis: now), "key 2 locked out at its request \(n)")
        }
        XCTAssertThrowsError(try replay.admit(auth(key: 2, 0), nowMillis: now), "a replay is still a replay")
    }

    /// The work of one admission does not grow with what is remembered: the admitting key's
    /// buckets, one lookup, one key of the sweep. The old guard filtered its whole table whenever
    /// it was full.
    func testWorkPerAdmissionIsBounded() throws {
        var replay = ReplayGuard(windowMillis: 30_000, capacity: 1_000_000, perKeyCapacity: 20_000)
        let bound = 2 * replay.bucketsPerKey + 4
        var worst = 0
        // Ten keys, one flooding to its limit over the whole window, timestamps spread over ±window.
        for n in 0..<40_000 {
            let t = now - 30_000 + UInt64(n % 60_000)
            try? replay.admit(auth(key: 1, n, at: t), nowMillis: now)
            worst = max(worst, replay.lastAdmitWork)
            if n % 4000 == 0 { try replay.admit(auth(key: UInt32(n / 4000 + 2), n), nowMillis: now) }
        }
        XCTAssertEqual(replay.count(forKey: 1), 20_000)
        XCTAssertThrowsError(try replay.admit(auth(key: 1, 99_999), nowMillis: now)) {
            XCTAssertEqual(($0 as? ConvertError)?.code, .resourceExceeded)
        }
        XCTAssertLessThanOrEqual(replay.lastAdmitWork, bound, "a refusal when full")
        XCTAssertLessThanOrEqual(worst, bound, "any admission")
    }

    /// A nonce is forgotten once its timestamp is out of the window, a whole bucket at a time;
    /// a key that went quiet leaves entirely through the sweep of other keys' admissions.
    func testExpiredNoncesAndIdleKeysAreForgotten() throws {
        var replay = ReplayGuard(windowMillis: 30_000, capacity: 100, perKeyCapacity: 10)
        for n in 0..<10 { try replay.admit(auth(key: 1, n), nowMillis: now) }
        XCTAssertThrowsError(try replay.admit(auth(key: 1, 10), nowMillis: now), "key 1 is full")
        // Replays are refused for as long as their timestamps are fresh...
        XCTAssertThrowsError(try replay.admit(auth(key: 1, 3), nowMillis: now + 30_000))
        // ...and after that they are stale, so the nonces need no remembering.
        let later = now + 30_000 + replay.bucketMillis + 1
        XCTAssertNoThrow(try replay.admit(auth(key: 1, 11, at: later), nowMillis: later))
        XCTAssertEqual(replay.count(forKey: 1), 1)
        XCTAssertEqual(replay.count, 1)
        let muchLater = later + 30_000 + replay.bucketMillis + 1
        for n in 0..<3 { try replay.admit(auth(key: 2, n, at: muchLater), nowMillis: muchLater) }
        XCTAssertEqual(replay.count(forKey: 1), 0)
        XCTAssertEqual(replay.keyCount, 1, "the idle key left")
    }

    /// A key over its own limit is refused with `.resourceExceeded`, and the reason names the key.
    func testAFullKeyIsItsOwnRefusalReason() throws {
        var replay = ReplayGuard(windowMillis: 30_000, capacity: 100, perKeyCapacity: 2)
        try replay.admit(auth(key: 7, 1), nowMillis: now)
        try replay.admit(auth(key: 7, 2), nowMillis: now)
        XCTAssertThrowsError(try replay.admit(auth(key: 7, 3), nowMillis: now)) {
            XCTAssertEqual(($0 as? ConvertError)?.code, .resourceExceeded)
            XCTAssertTrue("\($0)".contains("key id 7"), "\($0)")
        }
    }
}
