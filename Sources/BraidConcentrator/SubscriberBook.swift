import BraidConfig
import BraidCore
import BraidDataPlane
import BraidStore
import BraidStatus
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
    /// Bytes per subscriber since start, counted by the relays themselves (ByteMeter). Never
    /// removed, so a reload (even one that removes the subscriber) loses no byte and the metrics'
    /// counters never go back.
    private var meters: [String: ByteMeter] = [:]
    /// Open control channels, by channel.
    private var channels: [ObjectIdentifier: ChannelView] = [:]
    /// Open control channels per subscriber.
    private var channelsPerSubscriber: [String: Int] = [:]
    /// When each subscriber's last control channel closed, wall clock seconds.
    private var channelsDownSince: [String: Double] = [:]
    /// Bits per second per subscriber over the last sampling interval, and that sample.
    private var rates: [String: ByteRate] = [:]
    private var lastSample: (nanos: UInt64, bytes: [String: ByteCount])?
    /// The classes and subscribers of a shared store, when there is one: a reload of the file
    /// keeps them (the file has none), only the store's feed replaces them.
    private var storeDirectory: SubscriberDirectory?
    /// Each meter as the accounting timer last read it: `takeUsage` hands over what came since.
    private var usageRead: [String: ByteCount] = [:]
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
            var b = buckets[owner] ?? (nil, nil)
            if buckets[owner] == nil, let c {
                b = (
                    c.rateDown > 0 ? TokenBucket(bitsPerSecond: c.rateDown, now: now) : nil,
                    c.rateUp > 0 ? TokenBucket(bitsPerSecond: c.rateUp, now: now) : nil
                )
                buckets[owner] = b
            }
            let ticket = SessionTicket { [weak self] in self?.release(owner) }
            let meter = meters[owner] ?? ByteMeter()
            meters[owner] = meter
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

    // MARK: status

    /// One open control channel as status shows it.
    struct ChannelView {
        var subscriber: String
        var from: String
        var since: Double
        var key: UInt32?
    }

    /// A control channel of `subscriber` is up (after its TLS handshake and the subscriber check).
    func channelOpened(_ id: ObjectIdentifier, subscriber: String, from: String) {
        let now = Double(wallClockMillis()) / 1000
        lock.withLock {
            channels[id] = ChannelView(subscriber: subscriber, from: from, since: now)
            channelsPerSubscriber[subscriber, default: 0] += 1
        }
    }

    /// The channel granted a new session key.
    func channelGranted(_ id: ObjectIdentifier, key: UInt32) {
        lock.withLock { channels[id]?.key = key }
    }

    func channelClosed(_ id: ObjectIdentifier) {
        let now = Double(wallClockMillis()) / 1000
        lock.withLock {
            guard let gone = channels.removeValue(forKey: id) else { return }
            let left = (channelsPerSubscriber[gone.subscriber] ?? 1) - 1
            channelsPerSubscriber[gone.subscriber] = left > 0 ? left : nil
            if left <= 0 { channelsDownSince[gone.subscriber] = now }
        }
    }

    /// Takes a sample of every meter and keeps each subscriber's rate since the last one. Called
    /// about once a second by the concentrator's control thread.
    func sampleRates(nowNanos: UInt64 = monotonicNanos()) {
        lock.withLock {
            let bytes = meters.mapValues { ByteCount(up: $0.up, down: $0.down) }
            if let last = lastSample, nowNanos > last.nanos {
                let seconds = Double(nowNanos - last.nanos) / 1e9
                rates = bytes.mapValues { _ in ByteRate(up: 0, down: 0) }
                for (name, now) in bytes {
                    let before = last.bytes[name] ?? ByteCount(up: 0, down: 0)
                    rates[name] = ByteRate(
                        up: rounded(Double(now.up &- before.up) * 8 / seconds, 0),
                        down: rounded(Double(now.down &- before.down) * 8 / seconds, 0))
                }
            }
            lastSample = (nowNanos, bytes)
        }
    }

    /// Every subscriber, configured ones in the configuration's order, then the pre-shared key's
    /// holders (when accepted or counted), then subscribers a reload removed that have bytes.
    /// The book's tables are copied under the lock (copy-on-write: no work until the next change)
    /// and the views built outside it, so a status request or a scrape of thousands of
    /// subscribers never holds up a data reactor's admission.
    /// With a shared store, its subscribers (in the store's order) stand in for the file's.
    func statusViews(configured order: [String]) -> [SubscriberStatus] {
        let (subscribers, open, meters, channels, downSince, rates, preshared, store) = lock.withLock {
            (
                self.subscribers, self.open, self.meters, self.channels, channelsDownSince, self.rates,
                presharedPolicy, storeDirectory
            )
        }
        let classOf: (String) -> String? = { name in
            name == Self.presharedOwner ? preshared.serviceClass : subscribers[name]?.serviceClass
        }
        var names = store.map { $0.subscribers.map(\.name) } ?? order
        if preshared.accepted || meters[Self.presharedOwner] != nil { names.append(Self.presharedOwner) }
        let listed = Set(names)
        names += meters.keys.filter { !listed.contains($0) }.sorted()
        let bySubscriber = Dictionary(grouping: channels.values, by: \.subscriber)
        return names.map { name in
            let meter = meters[name]
            let config: String
            let control: SubscriberControlStatus
            if name == Self.presharedOwner {
                config = preshared.accepted ? "enabled" : "disabled"
                control = SubscriberControlStatus(state: "none")
            } else {
                config = subscribers[name].map { $0.enabled ? "enabled" : "disabled" } ?? "removed"
                let mine = (bySubscriber[name] ?? []).sorted { $0.since < $1.since }
                if let newest = mine.last {
                    control = SubscriberControlStatus(
                        state: "up", since: mine.first?.since, key: newest.key, from: newest.from,
                        channels: mine.count)
                } else if let since = downSince[name] {
                    control = SubscriberControlStatus(state: "down", since: since)
                } else {
                    control = SubscriberControlStatus(state: "never")
                }
            }
            return SubscriberStatus(
                name: name, serviceClass: classOf(name), config: config, control: control,
                sessions: open[name] ?? 0, bytes: ByteCount(up: meter?.up ?? 0, down: meter?.down ?? 0),
                rateBps: rates[name] ?? ByteRate(up: 0, down: 0))
        }
    }

    /// Control channels open now.
    var channelCount: Int { lock.withLock { channels.count } }

    // MARK: accounting

    /// Bytes each owner's sessions moved since the last call (the accounting timer's): the
    /// difference between the relays' meters now and at the last reading. The meters only grow
    /// (status and metrics read them too), so the reading, not the meter, is what moves on.
    func takeUsage() -> [String: Traffic] {
        lock.withLock {
            var out: [String: Traffic] = [:]
            for (owner, meter) in meters {
                let now = ByteCount(up: meter.up, down: meter.down)
                let last = usageRead[owner] ?? ByteCount(up: 0, down: 0)
                let t = Traffic(up: now.up &- last.up, down: now.down &- last.down)
                if t.up > 0 || t.down > 0 { out[owner] = t }
                usageRead[owner] = now
            }
            return out
        }
    }
}
