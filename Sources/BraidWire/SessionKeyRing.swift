/// The concentrator's session keys by key id, for authenticating data connections. Each owner (a
/// gateway's control session) has at most `keysPerOwner` keys: its current one and the one it
/// replaced, which stays valid for a grace period so connections opened just before the rotation
/// still authenticate. Expired keys are refused even before they are pruned.
///
/// A plain value with no lock: one ring is shared by the control sessions and every data-plane
/// reactor, so callers wrap it in their own lock. Time is passed in, on the clock the control
/// sessions use (milliseconds).
public struct SessionKeyRing: Sendable {
    /// Current plus previous.
    public static let keysPerOwner = 2

    public struct Entry: Equatable, Sendable {
        public var id: UInt32
        public var key: [UInt8]
        public var notAfterMillis: UInt64
        /// Who the key was granted to (e.g. the gateway's certificate name), for policy and logs.
        public var owner: String
    }

    private var entries: [UInt32: Entry] = [:]
    /// Key ids of each owner, oldest first.
    private var byOwner: [String: [UInt32]] = [:]

    public init() {}

    /// Live and expired-but-not-pruned keys.
    public var count: Int { entries.count }

    /// Adds a key. Installing a third key for an owner drops its oldest; the dropped ids are
    /// returned for the log. Key id 0 (the pre-shared key), a wrong key size or an id that
    /// another key already has are refused.
    @discardableResult
    public mutating func install(id: UInt32, key: [UInt8], notAfterMillis: UInt64, owner: String) throws -> [UInt32] {
        guard id != 0 else { throw ControlError(.invalidValue, "key id 0 is reserved for the pre-shared key") }
        guard key.count == ControlMessage.SessionGrant.keySize else {
            throw ControlError(
                .invalidValue, "key \(id) of \(key.count) bytes, expected \(ControlMessage.SessionGrant.keySize)")
        }
        if let existing = entries[id] {
            throw ControlError(.invalidValue, "key id \(id) is already in use by \(existing.owner)")
        }
        entries[id] = Entry(id: id, key: key, notAfterMillis: notAfterMillis, owner: owner)
        var ids = byOwner[owner, default: []]
        ids.append(id)
        var evicted: [UInt32] = []
        while ids.count > Self.keysPerOwner {
            let old = ids.removeFirst()
            entries[old] = nil
            evicted.append(old)
        }
        byOwner[owner] = ids
        return evicted
    }

    /// Forgets a key (rotation grace over, session said goodbye). Unknown ids are ignored: the
    /// key may already have been evicted or pruned.
    public mutating func retire(id: UInt32) {
        guard let entry = entries.removeValue(forKey: id) else { return }
        byOwner[entry.owner]?.removeAll { $0 == id }
        if byOwner[entry.owner]?.isEmpty == true { byOwner[entry.owner] = nil }
    }

    /// Forgets every key of `owner`.
    public mutating func retireAll(owner: String) {
        for id in byOwner[owner] ?? [] { entries[id] = nil }
        byOwner[owner] = nil
    }

    /// The key for `id` if it is known and not expired at `nowMillis`.
    public func lookup(id: UInt32, nowMillis: UInt64) throws -> Entry {
        guard let entry = entries[id] else { throw ControlError(.notAuthorized, "unknown key id \(id)") }
        guard nowMillis < entry.notAfterMillis else {
            throw ControlError(
                .notAuthorized, "key id \(id) expired \(nowMillis - entry.notAfterMillis) ms ago")
        }
        return entry
    }

    /// Drops expired keys; returns their ids.
    @discardableResult
    public mutating func prune(nowMillis: UInt64) -> [UInt32] {
        let expired = entries.values.filter { nowMillis >= $0.notAfterMillis }.map(\.id).sorted()
        for id in expired { retire(id: id) }
        return expired
    }

    /// A non-zero key id that no key in the ring has, drawn from `random` so ids do not reveal
    /// how many sessions the concentrator has granted.
    public func unusedID<R: RandomNumberGenerator>(using random: inout R) -> UInt32 {
        while true {
            let id = UInt32.random(in: 1...UInt32.max, using: &random)
            if entries[id] == nil { return id }
        }
    }
}
