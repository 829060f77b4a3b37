import BraidWire

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

/// What an admitted data session gets: its subscriber's rate buckets (towards the origin, the
/// upload; towards the client, the download), its ticket, and the meter its bytes are counted in.
public struct SessionGrant {
    public var limitToOrigin: TokenBucket?
    public var limitToClient: TokenBucket?
    public var ticket: SessionTicket?
    public var meter: ByteMeter?

    public init(
        limitToOrigin: TokenBucket?, limitToClient: TokenBucket?, ticket: SessionTicket?, meter: ByteMeter? = nil
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
