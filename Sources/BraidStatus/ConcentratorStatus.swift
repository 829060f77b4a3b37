/// The concentrator's answer to `braid status`: its listener and destination policy, and per
/// subscriber what an operator asks first (is its gateway connected, how much does it move).
/// Fields may be added, never renamed.
public struct ConcentratorStatus: Codable, Sendable, Equatable {
    public var role = "concentrator"
    /// The MPTCP data endpoint.
    public var listen: String
    public var denyDest: [String]
    public var allowDest: [String]
    public var denyPort: [String]
    public var allowPort: [String]
    /// When the document was made, seconds since the Unix epoch (wall clock).
    public var time: Double
    /// Data sessions of every subscriber.
    public var sessions: SessionCount
    /// Bytes of every subscriber since start.
    public var bytes: ByteCount
    /// Control channels open now (a subscriber may have more than one: two gateways, one certificate).
    public var controlChannels: Int
    /// Every configured subscriber, and any that a reload removed while it still had bytes counted.
    public var subscribers: [SubscriberStatus]
    /// Connections refused since start, by where and why.
    public var refusals: [RefusalCount]

    enum CodingKeys: String, CodingKey {
        case role, listen
        case denyDest = "deny_dest"
        case allowDest = "allow_dest"
        case denyPort = "deny_port"
        case allowPort = "allow_port"
        case time, sessions, bytes
        case controlChannels = "control_channels"
        case subscribers, refusals
    }

    public init(
        listen: String, denyDest: [String], allowDest: [String], denyPort: [String], allowPort: [String],
        time: Double, sessions: SessionCount, bytes: ByteCount, controlChannels: Int,
        subscribers: [SubscriberStatus], refusals: [RefusalCount]
    ) {
        self.listen = listen
        self.denyDest = denyDest
        self.allowDest = allowDest
        self.denyPort = denyPort
        self.allowPort = allowPort
        self.time = time
        self.sessions = sessions
        self.bytes = bytes
        self.controlChannels = controlChannels
        self.subscribers = subscribers
        self.refusals = refusals
    }
}

/// One subscriber (or the pre-shared key's holders, together under the name `pre-shared key`).
public struct SubscriberStatus: Codable, Sendable, Equatable {
    public var name: String
    /// Its service class; null when it has none (the pre-shared key without `psk_class`).
    public var serviceClass: String?
    /// `enabled`, `disabled`, or `removed` (gone from the configuration by a reload; it stays
    /// listed, its totals frozen once its last session ends, until the concentrator restarts).
    public var config: String
    public var control: SubscriberControlStatus
    /// Data sessions open now.
    public var sessions: Int
    /// Bytes relayed since start (the few bytes of each session's Convert reply included).
    public var bytes: ByteCount
    /// Bits per second each way over the last sampling interval (about a second).
    public var rateBps: ByteRate

    enum CodingKeys: String, CodingKey {
        case name
        case serviceClass = "class"
        case config, control, sessions, bytes
        case rateBps = "rate_bps"
    }

    public init(
        name: String, serviceClass: String?, config: String, control: SubscriberControlStatus, sessions: Int,
        bytes: ByteCount, rateBps: ByteRate
    ) {
        self.name = name
        self.serviceClass = serviceClass
        self.config = config
        self.control = control
        self.sessions = sessions
        self.bytes = bytes
        self.rateBps = rateBps
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(serviceClass, forKey: .serviceClass)
        try c.encode(config, forKey: .config)
        try c.encode(control, forKey: .control)
        try c.encode(sessions, forKey: .sessions)
        try c.encode(bytes, forKey: .bytes)
        try c.encode(rateBps, forKey: .rateBps)
    }
}

/// A subscriber's control channel as the concentrator sees it.
public struct SubscriberControlStatus: Codable, Sendable, Equatable {
    /// `up` (at least one channel open), `down` (was up, is not), `never` (not since start),
    /// or `none` (a subscriber that has no control channel: the pre-shared key).
    public var state: String
    /// When `state` began, seconds since the Unix epoch; null for `never` and `none`.
    public var since: Double?
    /// The session key last granted on the newest open channel; null when down.
    public var key: UInt32?
    /// The gateway's address and port on the newest open channel; null when down.
    public var from: String?
    /// Channels open now.
    public var channels: Int

    public init(state: String, since: Double? = nil, key: UInt32? = nil, from: String? = nil, channels: Int = 0) {
        self.state = state
        self.since = since
        self.key = key
        self.from = from
        self.channels = channels
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(state, forKey: .state)
        try c.encode(since, forKey: .since)
        try c.encode(key, forKey: .key)
        try c.encode(from, forKey: .from)
        try c.encode(channels, forKey: .channels)
    }
}

/// Bits per second each way.
public struct ByteRate: Codable, Sendable, Equatable {
    public var up: Double
    public var down: Double

    public init(up: Double, down: Double) {
        self.up = up
        self.down = down
    }
}

/// Connections refused since start for one reason.
public struct RefusalCount: Codable, Sendable, Equatable {
    /// `data` (before authentication on the data port), `destination` (authenticated, the
    /// destination refused by a rule), `session` (authenticated, refused by the subscriber's
    /// admission: `max_sessions`) or `control` (the control port: at TLS, or a certificate whose
    /// subscriber is unknown or disabled).
    public var listener: String
    public var reason: String
    public var count: UInt64

    public init(listener: String, reason: String, count: UInt64) {
        self.listener = listener
        self.reason = reason
        self.count = count
    }
}
