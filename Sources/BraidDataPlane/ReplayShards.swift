import BraidWire

/// The concentrator's replay state, shared by every reactor: a replay must be caught whichever
/// core accepts it. Kept in `shardCount` `ReplayGuard`s by key id, each behind its own lock, so
/// reactors admitting different subscribers' requests do not wait for each other, and a key
/// holder that floods contends only with the keys of its shard. A key's requests always meet in
/// one shard, so a replay is seen. Only the admission itself runs under the lock; parsing and the
/// MAC run before it, outside.
final class ReplayShards: ReplayAdmission, @unchecked Sendable {
    /// More than the cores of a concentrator (one reactor each), so two reactors seldom meet.
    static let shardCount = 16

    private final class Shard {
        let lock = Mutex()
        var replay: ReplayGuard

        init(_ replay: ReplayGuard) { self.replay = replay }
    }

    private let shards: [Shard]
    /// The window of every shard, for `isFresh`.
    private let windowMillis: UInt64

    /// `capacity` is shared out evenly: each shard holds `capacity / shardCount` nonces before
    /// refusing keys over their share.
    init(windowMillis: UInt64 = 30_000, capacity: Int = 1_000_000) {
        self.windowMillis = windowMillis
        shards = (0..<Self.shardCount).map { _ in
            Shard(ReplayGuard(windowMillis: windowMillis, capacity: max(1, capacity / Self.shardCount)))
        }
    }

    func admit(_ auth: ConvertAuthentication, nowMillis: UInt64) throws {
        let shard = shards[Int(auth.keyID % UInt32(Self.shardCount))]
        try shard.lock.withLock { try shard.replay.admit(auth, nowMillis: nowMillis) }
    }

    func isFresh(_ timestampMillis: UInt64, nowMillis: UInt64) -> Bool {
        (timestampMillis > nowMillis ? timestampMillis - nowMillis : nowMillis - timestampMillis) <= windowMillis
    }

    /// Nonces remembered, over all shards.
    var count: Int { shards.reduce(0) { total, s in total + s.lock.withLock { s.replay.count } } }
}
