import BraidWire
import Synchronization

/// Keeps a data session counted against its subscriber while anything holds it: the acceptor
/// until the relay starts, then the relay until it ends. The count is given back when the last
/// reference goes, whichever way the session ended.
public final class SessionTicket: @unchecked Sendable {
    private let onRelease: () -> Void

    public init(onRelease: @escaping () -> Void) {
        self.onRelease = onRelease
    }

    deinit { onRelease() }
}

/// Bytes a subscriber's sessions moved, each way, shared by every relay of the subscriber (on any
/// reactor) and read and reset by the accounting timer. Atomics, not a lock: relays add to it at
/// every wake-up.
public final class TrafficMeter: Sendable {
    private let toOrigin = Atomic<UInt64>(0)
    private let toClient = Atomic<UInt64>(0)

    public init() {}

    public func add(toOrigin up: UInt64, toClient down: UInt64) {
        if up > 0 { toOrigin.add(up, ordering: .relaxed) }
        if down > 0 { toClient.add(down, ordering: .relaxed) }
    }

    /// The bytes since the last call, each way; the meter starts again from zero.
    public func take() -> (toOrigin: UInt64, toClient: UInt64) {
        (toOrigin.exchange(0, ordering: .relaxed), toClient.exchange(0, ordering: .relaxed))
    }
}

/// What an admitted data session gets: its subscriber's rate buckets (towards the origin, the
/// upload; towards the client, the download), its ticket and the meter its bytes are counted on.
public struct SessionGrant {
    public var limitToOrigin: TokenBucket?
    public var limitToClient: TokenBucket?
    public var ticket: SessionTicket?
    public var meter: TrafficMeter?

    public init(
        limitToOrigin: TokenBucket?, limitToClient: TokenBucket?, ticket: SessionTicket?, meter: TrafficMeter? = nil
    ) {
        self.limitToOrigin = limitToOrigin
        self.limitToClient = limitToClient
        self.ticket = ticket
        self.meter = meter
    }
}

/// The concentrator's decision on an authenticated data connection, before it connects.
public enum Admission {
    case admit(SessionGrant)
    /// Answered with this error (a session limit: Resource Exceeded).
    case refuse(ConvertError)
}
