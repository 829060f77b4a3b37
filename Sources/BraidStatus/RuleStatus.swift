/// One rule of the gateway as `braid status` shows it, in evaluation order: the gateway's own
/// rules (`local`) first, then those the operator pushed for its class (`operator`).
public struct RuleStatus: Codable, Sendable, Equatable {
    public var name: String
    /// `local` (the gateway's `config rule`) or `operator` (pushed by the concentrator).
    public var origin: String
    /// `bond`, `direct` or `block`.
    public var action: String
    /// Packets the rule's nftables counters matched since it was applied: a connection's first
    /// packets only (later ones are accepted before the rules), so about its connections.
    public var hits: UInt64
    /// Bytes of those packets.
    public var bytes: UInt64

    public init(name: String, origin: String, action: String, hits: UInt64, bytes: UInt64) {
        self.name = name
        self.origin = origin
        self.action = action
        self.hits = hits
        self.bytes = bytes
    }
}
