/// One concentrator a gateway knows (an entry of `list server`), as `braid status` shows it.
public struct ConcentratorEntryStatus: Codable, Sendable, Equatable {
    /// The entry as configured: an address or a DNS name.
    public var server: String
    /// `up` (healthy: control channel up, probes answered), `down` or `unknown` (not judged yet).
    public var state: String
    /// Whether new sessions go to it.
    public var inUse: Bool
    /// Since when it is in `state`, seconds since the Unix epoch; nil while unknown.
    public var since: Double?
    /// Its addresses: resolved or configured, then announced over its control channel.
    public var addresses: [String]
    /// Its control channel: `up`, `down` or `off` (no TLS).
    public var control: String
    /// The session key it granted, in use for data connections to it.
    public var key: UInt32?
    /// Why it is down.
    public var error: String?

    enum CodingKeys: String, CodingKey {
        case server, state
        case inUse = "in_use"
        case since, addresses, control, key, error
    }

    public init(
        server: String, state: String, inUse: Bool, since: Double? = nil, addresses: [String], control: String,
        key: UInt32? = nil, error: String? = nil
    ) {
        self.server = server
        self.state = state
        self.inUse = inUse
        self.since = since
        self.addresses = addresses
        self.control = control
        self.key = key
        self.error = error
    }
}
