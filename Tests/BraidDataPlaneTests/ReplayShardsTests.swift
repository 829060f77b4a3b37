import BraidCore
import BraidWire
import Dispatch
import XCTest

@testable import BraidDataPlane

/// The replay state the reactors share: a replay is caught whichever thread sees it, and a key
/// that floods fills only its own share of its shard.
final class ReplayShardsTests: XCTestCase {
    let now: UInt64 = 1_790_000_000_000

    func auth(key: UInt32, _ n: Int) -> ConvertAuthentication {
        var nonce = [UInt8](repeating: 0, count: ConvertAuthentication.nonceSize)
        for i in 0..<8 { nonce[i] = UInt8(truncatingIfNeeded: n >> (8 * i)) }
        for i in 8..<12 { nonce[i] = UInt8(truncatingIfNeeded: key >> (8 * UInt32(i - 8))) }
        return ConvertAuthentication(
            keyID: key, timestampMillis: now, nonce: nonce,
            mac: [UInt8](repeating: 0, count: ConvertAuthentication.macSize))
    }

    func testAFloodingKeyFillsOnlyItsShare() throws {
        let shards = ReplayShards(capacity: 10 * ReplayShards.shardCount)
        var refused = 0
        for n in 0..<100 {
            do { try shards.admit(auth(key: 1, n), nowMillis: now) } catch { refused += 1 }
        }
        XCTAssertEqual(refused, 90, "key 1 keeps its shard's 10 nonces")
        // Another key of the same shard still has its share; a key of another shard its own room.
        let sameShard = 1 + UInt32(ReplayShards.shardCount)
        for n in 0..<5 { XCTAssertNoThrow(try shards.admit(auth(key: sameShard, n), nowMillis: now)) }
        for n in 0..<10 { XCTAssertNoThrow(try shards.admit(auth(key: 2, n), nowMillis: now)) }
        XCTAssertThrowsError(try shards.admit(auth(key: 2, 3), nowMillis: now), "a replay")
    }

    func testReplaysAreCaughtAcrossThreads() {
        let shards = ReplayShards()
        let admitted = Mutex()
        var count = 0
        // Four threads offer the same 2,000 requests of 8 keys: each is admitted exactly once.
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for n in 0..<2000 {
                if (try? shards.admit(auth(key: UInt32(n % 8), n), nowMillis: now)) != nil {
                    admitted.withLock { count += 1 }
                }
            }
        }
        XCTAssertEqual(count, 2000)
        XCTAssertEqual(shards.count, 2000)
    }
}
