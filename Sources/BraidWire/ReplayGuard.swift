import BraidCore

/// What `ConvertServerHandshake.feed` asks about a request whose MAC is good: whether its
/// timestamp is fresh and its nonce unseen. `ReplayGuard` answers it for one thread; the
/// concentrator's data plane answers it from lock-sharded guards so that reactors do not queue
/// behind one lock.
public protocol ReplayAdmission {
    /// Accepts `auth` once, if its timestamp lies within the window around `nowMillis`; throws
    /// `.notAuthorized` for a stale or replayed request and `.resourceExceeded` when there is no
    /// room to remember it.
    mutating func admit(_ auth: ConvertAuthentication, nowMillis: UInt64) throws
    /// Whether a timestamp lies within the window around `nowMillis`.
    func isFresh(_ timestampMillis: UInt64, nowMillis: UInt64) -> Bool
}

/// Refuses authentication TLVs that are stale or already seen, with the memory and the work of
/// each admission bounded per key holder.
///
/// A nonce needs remembering only while its timestamp would still be accepted: until
/// `timestamp + window`. Nonces are kept per key id (each session key belongs to one subscriber,
/// so a key id is a key holder) in time buckets of a quarter window by their timestamp; a whole
/// bucket is forgotten at once when its newest timestamp falls out of the window. A replay repeats
/// the timestamp (the MAC covers it), so a lookup looks in one bucket.
///
/// Why per key: with one shared table, one subscriber holding a valid key could send fresh
/// requests until the table was full and every other subscriber's requests were refused; and
/// making room meant a filter over the whole table. Here a key holder is refused beyond
/// `perKeyCapacity` nonces, and beyond its fair share (`capacity / keys`) once the whole guard
/// holds `capacity`; the others keep their room. The whole guard holds at most about twice
/// `capacity` (entries over it come only from keys under their share).
///
/// Work per admission: the admitting key's buckets (at most `bucketsPerKey`), one lookup, and one
/// other key's buckets for the sweep that forgets idle keys. Forgetting a bucket frees its
/// entries, which is paid once per entry remembered.
public struct ReplayGuard: ReplayAdmission, Sendable {
    public let windowMillis: UInt64
    /// Nonces remembered in all, before keys over their fair share are refused.
    public let capacity: Int
    /// Nonces remembered for one key id at most. 65,536 in two windows (60 s by default) is over
    /// 1,000 new sessions a second from one subscriber, several times the 9,750-connection burst
    /// of a busy office; about 3 MB of memory.
    public let perKeyCapacity: Int
    /// Width of a time bucket.
    public let bucketMillis: UInt64

    /// A request's identity: its timestamp and nonce, both under the MAC.
    struct Seen: Hashable {
        let timestamp: UInt64
        let high: UInt64
        let low: UInt64

        init(_ auth: ConvertAuthentication) {
            timestamp = auth.timestampMillis
            var h: UInt64 = 0
            var l: UInt64 = 0
            for (i, b) in auth.nonce.prefix(ConvertAuthentication.nonceSize).enumerated() {
                if i < 8 { h = h << 8 | UInt64(b) } else { l = l << 8 | UInt64(b) }
            }
            high = h
            low = l
        }
    }

    /// What one key id's requests left to remember.
    struct KeyState {
        /// Bucket number (timestamp / bucketMillis) to the requests seen in it.
        var buckets: [UInt64: Set<Seen>] = [:]
        var count = 0
    }

    private var keys: [UInt32: KeyState] = [:]
    /// The key ids of `keys`, in an order the sweep walks.
    private var sweepOrder: [UInt32] = []
    private var sweepCursor = 0
    /// Nonces remembered, over all keys.
    public private(set) var count = 0
    /// Buckets, keys and lookups the last `admit` touched: the bound its tests check.
    public private(set) var lastAdmitWork = 0

    public init(
        windowMillis: UInt64 = 30_000, capacity: Int = 1_000_000, perKeyCapacity: Int = 65_536
    ) {
        self.windowMillis = windowMillis
        self.capacity = capacity
        self.perKeyCapacity = perKeyCapacity
        self.bucketMillis = max(1, windowMillis / 4)
    }

    /// Buckets a key can hold: timestamps span two windows (±window), plus a partial bucket at
    /// either end.
    public var bucketsPerKey: Int { Int(2 * windowMillis / bucketMillis) + 2 }

    /// Nonces remembered for `keyID`.
    public func count(forKey keyID: UInt32) -> Int { keys[keyID]?.count ?? 0 }

    /// Key ids with something remembered (or not yet swept).
    public var keyCount: Int { keys.count }

    public func isFresh(_ timestampMillis: UInt64, nowMillis: UInt64) -> Bool {
        (timestampMillis > nowMillis ? timestampMillis - nowMillis : nowMillis - timestampMillis) <= windowMillis
    }

    public mutating func admit(_ auth: ConvertAuthentication, nowMillis: UInt64) throws {
        lastAdmitWork = 0
        guard isFresh(auth.timestampMillis, nowMillis: nowMillis) else {
            let skew = max(auth.timestampMillis, nowMillis) - min(auth.timestampMillis, nowMillis)
            throw ConvertError(.notAuthorized, "timestamp \(skew) ms away from now, window \(windowMillis) ms")
        }
        sweepOne(nowMillis: nowMillis)
        let id = auth.keyID
        if keys[id] == nil {
            keys[id] = KeyState()
            sweepOrder.append(id)
        }
        forgetExpired(of: id, nowMillis: nowMillis)
        let seen = Seen(auth)
        let bucket = auth.timestampMillis / bucketMillis
        lastAdmitWork += 1
        guard keys[id]!.buckets[bucket]?.contains(seen) != true else {
            throw ConvertError(.notAuthorized, "replayed nonce")
        }
        let mine = keys[id]!.count
        guard mine < perKeyCapacity else {
            throw ConvertError(.resourceExceeded, "replay state of key id \(id) full (\(mine) nonces)")
        }
        let share = max(1, capacity / max(1, keys.count))
        guard count < capacity || mine < share else {
            throw ConvertError(
                .resourceExceeded,
                "replay cache full (\(count) nonces); key id \(id) holds \(mine), its share \(share)")
        }
        keys[id]!.buckets[bucket, default: []].insert(seen)
        keys[id]!.count += 1
        count += 1
    }

    /// Drops the buckets of `id` whose newest timestamp is out of the window: at most
    /// `bucketsPerKey` looked at.
    private mutating func forgetExpired(of id: UInt32, nowMillis: UInt64) {
        guard nowMillis > windowMillis, let state = keys[id] else { return }
        let floor = nowMillis - windowMillis
        // Bucket b holds timestamps up to (b + 1) * bucketMillis - 1; all below the floor: stale.
        var dropped = 0
        var removed: [UInt64] = []
        for (b, seen) in state.buckets {
            lastAdmitWork += 1
            if (b + 1) * bucketMillis <= floor {
                removed.append(b)
                dropped += seen.count
            }
        }
        guard !removed.isEmpty else { return }
        for b in removed { keys[id]!.buckets[b] = nil }
        keys[id]!.count -= dropped
        count -= dropped
    }

    /// Forgets the expired buckets of the next key in `sweepOrder`, and the key itself when
    /// nothing of it is left: idle keys leave without a pass over all keys.
    private mutating func sweepOne(nowMillis: UInt64) {
        guard !sweepOrder.isEmpty else { return }
        if sweepCursor >= sweepOrder.count { sweepCursor = 0 }
        let id = sweepOrder[sweepCursor]
        lastAdmitWork += 1
        forgetExpired(of: id, nowMillis: nowMillis)
        if keys[id]?.count == 0 {
            keys[id] = nil
            sweepOrder.swapAt(sweepCursor, sweepOrder.count - 1)
            sweepOrder.removeLast()
        } else {
            sweepCursor += 1
        }
    }
}
