/// The gateway's answer to `braid status`: its concentrator, sessions, control channel and
/// uplinks. The field names and shape are a published interface (scripts, the status page, the
/// namespace tests read them): fields may be added, never renamed.
public struct GatewayStatus: Codable, Sendable, Equatable {
    public var role = "gateway"
    /// The concentrator's data endpoint, `198.18.10.2:4800` or `[2001:db8::2]:4800`.
    public var concentrator: String
    public var sessions: SessionCount
    public var control: GatewayControlStatus
    public var uplinks: [UplinkStatus]
    /// Bytes relayed by every session since start (up: LAN to concentrator). Added after the
    /// first version of the document; older gateways leave it out.
    public var bytes: ByteCount?
    /// When the document was made, seconds since the Unix epoch (wall clock).
    public var time: Double?
    /// Every address the gateway knows the concentrator by (configured, resolved, announced).
    public var concentratorAddresses: [String]?
    /// The rules in force, the gateway's own then the operator's, with their hits (see RuleStatus).
    public var rules: [RuleStatus]?
    /// Every configured concentrator (`server`) in order of preference, with its state and
    /// whether new sessions go to it. Added with `list server`; older gateways leave it out.
    public var concentrators: [ConcentratorEntryStatus]?

    enum CodingKeys: String, CodingKey {
        case role, concentrator
        case concentratorAddresses = "concentrator_addresses"
        case concentrators
        case sessions, control, uplinks, bytes, time
        case rules
    }

    public init(
        concentrator: String, sessions: SessionCount, control: GatewayControlStatus, uplinks: [UplinkStatus],
        bytes: ByteCount? = nil, time: Double? = nil, concentratorAddresses: [String]? = nil
    ) {
        self.concentratorAddresses = concentratorAddresses
        self.concentrator = concentrator
        self.sessions = sessions
        self.control = control
        self.uplinks = uplinks
        self.bytes = bytes
        self.time = time
    }
}

/// Data sessions: open now, and opened since start.
public struct SessionCount: Codable, Sendable, Equatable {
    public var active: Int
    public var total: Int

    public init(active: Int, total: Int) {
        self.active = active
        self.total = total
    }
}

/// Bytes each way. `up` is towards the origin (the subscriber's upload), `down` towards the client.
public struct ByteCount: Codable, Sendable, Equatable {
    public var up: UInt64
    public var down: UInt64

    public init(up: UInt64, down: UInt64) {
        self.up = up
        self.down = down
    }
}

/// The gateway's control channel: `off` (pre-shared key only), `up` or `down`, the session key in
/// use, the class the concentrator pushed, and the last error while down.
public struct GatewayControlStatus: Codable, Sendable, Equatable {
    public var state: String
    public var key: UInt32?
    public var serviceClass: String?
    public var error: String?

    enum CodingKeys: String, CodingKey {
        case state, key
        case serviceClass = "class"
        case error
    }

    public init(state: String, key: UInt32? = nil, serviceClass: String? = nil, error: String? = nil) {
        self.state = state
        self.key = key
        self.serviceClass = serviceClass
        self.error = error
    }

    /// `off` is the state alone; otherwise key and class are always present (null when unknown)
    /// and error only when there is one, as the document has always been.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(state, forKey: .state)
        guard state != "off" else { return }
        try c.encode(key, forKey: .key)
        try c.encode(serviceClass, forKey: .serviceClass)
        try c.encodeIfPresent(error, forKey: .error)
    }
}

/// One uplink as `braid status` shows it.
public struct UplinkStatus: Codable, Sendable, Equatable {
    public var name: String
    public var device: String
    /// `active`, `backup`, `overflow` or `off`.
    public var role: String
    /// `up`, `down`, `unknown` (not probed yet), or `off`.
    public var state: String
    /// When `state` began, seconds since the Unix epoch.
    public var since: Double
    public var carrier: Bool
    public var addresses: [String]
    /// The family the uplink reaches the concentrator over, `ipv4` or `ipv6`; nil when the two
    /// have none in common.
    public var family: String?
    /// Smoothed round-trip time of the probes, milliseconds; null before the first answer.
    public var rttMs: Double?
    /// Share of recent probes unanswered, 0 to 1; null before enough were sent.
    public var loss: Double?
    /// MPTCP subflows to the concentrator on this uplink's addresses.
    public var subflows: Int
    /// `ok`, or `failing: REASON` when the path breaks MPTCP although probes pass.
    public var mptcp: String
    /// The device's own counters (every packet, headers included), from /sys/class/net.
    public var txBytes: UInt64
    public var rxBytes: UInt64
    /// Percent of the bonded bytes (all uplinks' bytes, both directions) this uplink carried over
    /// the last 10 seconds; null while too little went by to tell.
    public var share: Double?
    /// The cap on `share` in force (the lower of the uplink's `share` and its class's
    /// `uplink_share`); null is none.
    public var shareCap: Int?
    /// An overflow uplink's state: `standby` (the actives have room) or `carrying`; null for
    /// other roles.
    public var overflow: String?
    /// The data cap, when the uplink has one (`quota`); left out otherwise.
    public var quota: UplinkQuotaStatus?

    enum CodingKeys: String, CodingKey {
        case name, device, role, state, since, carrier, addresses, family
        case rttMs = "rtt_ms"
        case loss, subflows, mptcp
        case txBytes = "tx_bytes"
        case rxBytes = "rx_bytes"
        case share
        case shareCap = "share_cap"
        case overflow
        case quota
    }

    public init(
        name: String, device: String, role: String, state: String, since: Double, carrier: Bool,
        addresses: [String], rttMs: Double?, loss: Double?, subflows: Int, mptcp: String, txBytes: UInt64,
        rxBytes: UInt64, family: String? = nil, share: Double? = nil, shareCap: Int? = nil, overflow: String? = nil,
        quota: UplinkQuotaStatus? = nil
    ) {
        self.quota = quota
        self.family = family
        self.share = share
        self.shareCap = shareCap
        self.overflow = overflow
        self.name = name
        self.device = device
        self.role = role
        self.state = state
        self.since = since
        self.carrier = carrier
        self.addresses = addresses
        self.rttMs = rttMs
        self.loss = loss
        self.subflows = subflows
        self.mptcp = mptcp
        self.txBytes = txBytes
        self.rxBytes = rxBytes
    }

    /// rtt_ms and loss are written as null when unknown, never left out.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(device, forKey: .device)
        try c.encode(role, forKey: .role)
        try c.encode(state, forKey: .state)
        try c.encode(since, forKey: .since)
        try c.encode(carrier, forKey: .carrier)
        try c.encode(addresses, forKey: .addresses)
        try c.encode(family, forKey: .family)
        try c.encode(rttMs, forKey: .rttMs)
        try c.encode(loss, forKey: .loss)
        try c.encode(subflows, forKey: .subflows)
        try c.encode(mptcp, forKey: .mptcp)
        try c.encode(txBytes, forKey: .txBytes)
        try c.encode(rxBytes, forKey: .rxBytes)
        try c.encode(share, forKey: .share)
        try c.encode(shareCap, forKey: .shareCap)
        try c.encode(overflow, forKey: .overflow)
        try c.encodeIfPresent(quota, forKey: .quota)
    }
}

/// An uplink's data cap in `braid status`: bytes counted in this period against the cap, when
/// the count starts over, and whether the cap is reached (the uplink then plays `action`).
public struct UplinkQuotaStatus: Codable, Sendable, Equatable {
    /// Bytes received and sent by the device in this period.
    public var used: UInt64
    /// Bytes per period (`quota`).
    public var cap: UInt64
    /// `day`, `week` or `month`.
    public var period: String
    /// When the period ends and the count starts over, seconds since the Unix epoch.
    public var resetsAt: Int64
    /// The same, as the gateway's local date: `2026-12-01`.
    public var resetsOn: String
    /// `ok` (under the cap) or `reached`.
    public var state: String
    /// What the uplink becomes at the cap: `backup` or `off` (`quota_action`).
    public var action: String

    enum CodingKeys: String, CodingKey {
        case used, cap, period
        case resetsAt = "resets_at"
        case resetsOn = "resets_on"
        case state, action
    }

    public init(
        used: UInt64, cap: UInt64, period: String, resetsAt: Int64, resetsOn: String, state: String, action: String
    ) {
        self.used = used
        self.cap = cap
        self.period = period
        self.resetsAt = resetsAt
        self.resetsOn = resetsOn
        self.state = state
        self.action = action
    }
}

/// A value rounded to `digits` decimals, so documents carry what a reader can use (1.23 ms, not
/// 1.2345678 ms) without formatting numbers as text.
public func rounded(_ x: Double, _ digits: Int) -> Double {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    return (x * scale).rounded() / scale
}
