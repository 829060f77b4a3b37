import Synchronization

/// Bytes relayed each way by any number of sessions on any number of reactors: one per
/// subscriber on the concentrator, one for the whole forwarder on the gateway.
///
/// Each relay adds what a `splice(2)` or `send(2)` moved right where it returns: one relaxed
/// atomic add, no lock, so counting costs the data path nothing it would notice. Sessions of one
/// subscriber on two cores share the cache line; sessions of different subscribers never do.
/// Readers (status, metrics) see totals that only grow; a reload never replaces a meter.
public final class ByteMeter: Sendable {
    private let upBytes = Atomic<UInt64>(0)
    private let downBytes = Atomic<UInt64>(0)

    public init() {}

    /// Towards the origin: the client's upload (a relay's `b` side).
    public var up: UInt64 { upBytes.load(ordering: .relaxed) }
    /// Towards the client: the download (a relay's `a` side).
    public var down: UInt64 { downBytes.load(ordering: .relaxed) }

    func add(up n: Int) { upBytes.wrappingAdd(UInt64(n), ordering: .relaxed) }
    func add(down n: Int) { downBytes.wrappingAdd(UInt64(n), ordering: .relaxed) }
}
