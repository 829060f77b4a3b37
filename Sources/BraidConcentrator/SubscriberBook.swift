import BraidConfig
import BraidCore
import BraidDataPlane
import BraidStore
import BraidWire

/// What the concentrator knows of its subscribers at run time, shared by the control channel
/// (one thread) and the data reactors (one per core): the session keys granted to each, the
/// data sessions each has open, and each one's rate buckets. One lock; every operation is short.
final class SubscriberBook: @unchecked Sendable {
    private let lock = Mutex()
    private var subscribers: [String: Subscriber] = [:]
    private var classes: [String: ServiceClass] = [:]
    private var ring = SessionKeyRing()
    private var open: [String: Int] = [:]
    private var buckets: [String: (down: TokenBucket?, up: TokenBucket?)] = [:]
    /// Bytes per owner since the accounting timer last looked; kept while the owner has sessions
    /// or unread bytes.
    private var meters: [String: TrafficMeter] = [:]
    /// The classes and subscribers of a shared store, when there is one: a reload of the file
    /// keeps them (the file has none), only the store's feed replaces them.
    private var storeDirectory: SubscriberDirectory?
    /// The pre-shared key, behind key id 0, when the simple mode is configured.
    private let presharedKey: [UInt8]?
    /// Whether key id 0 is accepted now, and the class all its sessions share (a reload may
    /// change both: `ConcentratorConfig.acceptsPresharedKey`, `psk_class`).
    private var presharedPolicy: (accepted: Bool, serviceClass: String?) = (false, nil)

    /// The owner that sessions with the pre-shared key are counted and shaped under: one
    /// pseudo-subscriber for every holder of the key. A space keeps it apart from real
    /// subscribers, whose names are uci section names.
    static let presharedOwner = "pre-shared key"

    init(config: ConcentratorConfig, presharedKey: [UInt8]?) {
        self.presharedKey = presharedKey
        update(config)
    }

    /// The class that limits `owner`'s sessions: its subscriber's, or `psk_class` for the key.
    private func serviceClass(of owner: String) -> ServiceClass? {
        if owner == Self.presharedOwner { return presharedPolicy.serviceClass.flatMap { classes[$0] } }
        return subscribers[owner].flatMap { classes[$0.serviceClass] }
    }

    /// Takes new classes and subscribers (start, reload). Rates apply to sessions opened after.
    /// Returns the subscribers that were welcome and no longer are (removed or disabled): their
    /// keys are gone, and their control channels should be closed.
    @discardableResult
    func update(_ config: ConcentratorConfig) -> Set<String> {
        lock.withLock {
            presharedPolicy = (presharedKey != nil && config.acceptsPresharedKey, config.pskClass)
            return replace(storeDirectory ?? SubscriberDirectory(classes: config.classes, subscribers: config.subscribers))
        }
    }

    /// Takes a shared store's whole directory (start, and each change the store announces); from
    /// now on the file's subscribers are not used. Returns the subscribers no longer welcome.
    @discardableResult
    func update(_ directory: SubscriberDirectory) -> Set<String> {
        lock.withLock {
            storeDirectory = directory
            return replace(directory)
        }
    }

    /// Under the lock.
    private func replace(_ directory: SubscriberDirectory) -> Set<String> {
        let before = Set(subscribers.values.filter(\.enabled).map(\.name))
        subscribers = Dictionary(directory.subscribers.map { ($0.name, $0) }, uniquingKeysWith: { $1 })
        classes = Dictionary(directory.classes.map { ($0.name, $0) }, uniquingKeysWith: { $1 })
        // A subscriber keeps its buckets (shared with its running sessions) unless its rates
        // changed; otherwise sessions opened after a reload would get a second, full bucket.
        for (name, b) in buckets {
            let c = serviceClass(of: name)
            if b.down?.bitsPerSecond != c.flatMap({ $0.rateDown > 0 ? $0.rateDown : nil })
                || b.up?.bitsPerSecond != c.flatMap({ $0.rateUp > 0 ? $0.rateUp : nil })
            {
                buckets[name] = nil
            }
        }
        let after = Set(subscribers.values.filter(\.enabled).map(\.name))
        let gone = before.subtracting(after)
        for name in gone { ring.retireAll(owner: name) }
        return gone
    }

    static func nowMillis() -> UInt64 { monotonicNanos() / 1_000_000 }

    // MARK: control channel

    enum Verdict {
        case welcome(Subscriber, ServiceClass?)
        case refused(String)
    }

    /// Whether the holder of a certificate with this common name may open a control channel.
    func check(commonName: String) -> Verdict {
        lock.withLock {
            guard let s = subscribers[commonName] else { return .refused("unknown subscriber") }
            guard s.enabled else { return .refused("subscriber disabled") }
            return .welcome(s, classes[s.serviceClass])
        }
    }

    func isInUse(_ id: UInt32) -> Bool {
        lock.withLock { (try? ring.lookup(id: id, nowMillis: 0)) != nil || id == 0 }
    }

    func install(id: UInt32, key: [UInt8], notAfterMillis: UInt64, owner: String) throws -> [UInt32] {
        try lock.withLock { try ring.install(id: id, key: key, notAfterMillis: notAfterMillis, owner: owner) }
    }

    func retire(id: UInt32) {
        lock.withLock { ring.retire(id: id) }
    }

    /// Drops every session key of `owner` (its certificate was revoked).
    func retireAll(owner: String) {
        lock.withLock { ring.retireAll(owner: owner) }
    }

    /// Drops expired keys; returns their ids.
    func prune() -> [UInt32] {
        let now = Self.nowMillis()
        return lock.withLock { ring.prune(nowMillis: now) }
    }

    // MARK: data connections

    /// The key for a data connection's key id: a live session key, or the pre-shared key for id 0
    /// while it is accepted (a refused key is an unknown key: the client learns nothing more).
    func key(for id: UInt32) throws -> [UInt8] {
        let now = Self.nowMillis()
        return try lock.withLock {
            if id == 0 {
                guard let presharedKey else { throw ConvertError(.notAuthorized, "pre-shared key mode is off") }
                guard presharedPolicy.accepted else {
                    throw ConvertError(.notAuthorized, "pre-shared key refused: TLS is configured and psk_class is not")
                }
                return presharedKey
            }
            return try ring.lookup(id: id, nowMillis: now).key
        }
    }

    /// Admits an authenticated data connection for its subscriber (or the pre-shared key's
    /// pseudo-subscriber, for key id 0): counts it against the class's session limit and hands
    /// over the rate buckets. Ownership is checked again here, under the lock: a reload that
    /// disabled the subscriber (or refused the pre-shared key) after the MAC was checked still
    /// wins. The ticket gives the session back when the last reference to it goes.
    func admit(keyID: UInt32) -> Admission {
        let now = monotonicNanos()
        return lock.withLock {
            let owner: String
            if keyID == 0 {
                guard presharedKey != nil, presharedPolicy.accepted else {
                    return .refuse(ConvertError(.notAuthorized, "the pre-shared key is refused"))
                }
                owner = Self.presharedOwner
            } else {
                guard let o = try? ring.lookup(id: keyID, nowMillis: now / 1_000_000).owner,
                    let s = subscribers[o], s.enabled
                else {
                    return .refuse(
                        ConvertError(.notAuthorized, "key \(keyID) no longer belongs to an enabled subscriber"))
                }
                owner = o
            }
            let c = serviceClass(of: owner)
            let count = open[owner, default: 0]
            if let c, c.maxSessions > 0, count >= Int(c.maxSessions) {
                return .refuse(
                    ConvertError(
                        .resourceExceeded, "\(owner): \(count) sessions open, class \(c.name) allows \(c.maxSessions)"))
            }
            open[owner] = count + 1
            let meter = meters[owner] ?? TrafficMeter()
            meters[owner] = meter
            var b = buckets[owner] ?? (nil, nil)
            if buckets[owner] == nil, let c {
                b = (
                    c.rateDown > 0 ? TokenBucket(bitsPerSecond: c.rateDown, now: now) : nil,
                    c.rateUp > 0 ? TokenBucket(bitsPerSecond: c.rateUp, now: now) : nil
                )
                buckets[owner] = b
            }
            let ticket = SessionTicket { [weak self] in self?.release(owner) }
            return .admit(SessionGrant(limitToOrigin: b.up, limitToClient: b.down, ticket: ticket, meter: meter))
        }
    }

    private func release(_ owner: String) {
        lock.withLock {
            let n = open[owner, default: 1] - 1
            open[owner] = n > 0 ? n : nil
        }
    }

    /// Open data sessions per subscriber, for status.
    var sessions: [String: Int] { lock.withLock { open } }

    /// Bytes each owner's sessions moved since the last call (the accounting timer's). A meter
    /// whose owner has no session open and nothing unread goes.
    func takeUsage() -> [String: Traffic] {
        lock.withLock {
            var out: [String: Traffic] = [:]
            for (owner, meter) in meters {
                let t = meter.take()
                if t.toOrigin > 0 || t.toClient > 0 {
                    out[owner] = Traffic(up: t.toOrigin, down: t.toClient)
                } else if open[owner] == nil {
                    meters[owner] = nil
                }
            }
            return out
        }
    }
}
