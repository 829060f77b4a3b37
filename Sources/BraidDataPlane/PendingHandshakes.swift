import BraidCore

#if canImport(Glibc)
import Glibc
#endif

/// The data connections accepted and not yet authenticated, and the limits (`max_pending`,
/// `max_pending_per_source`) that keep a flood of them from taking every descriptor: a
/// connection over its source's limit is reset at accept, before anything is allocated for it or
/// read from it; when every slot is taken, the oldest handshake of the heaviest source gives its
/// slot to the newcomer (`PendingSlots` has the policy and its numbers). The control port keeps
/// its TLS handshakes in flight in a `PendingSlots` of its own (`max_control_handshakes`,
/// `max_control_handshakes_per_source`), with the `.overFairShare` eviction.
///
/// Shared by every reactor behind one small lock, not counted per reactor: EPOLLEXCLUSIVE hands
/// a source's connections to whichever reactor wakes first, so per-reactor shares of a per-source
/// limit would refuse a source on one core while another has room. The lock is held for a few
/// dictionary updates at accept and when the handshake ends.
public final class PendingHandshakes<Holder>: @unchecked Sendable {
    public typealias Ticket = PendingSlots<Holder>.Ticket
    public typealias Admission = PendingSlots<Holder>.Admission

    private let lock = Mutex()
    private var slots = PendingSlots<Holder>()

    public init() {}

    /// Takes a slot for `holder`'s handshake from `source` (see `PendingSlots.admit`). The
    /// evicted holder, if any, is the caller's to end.
    public func admit(_ source: SourceBlock, holder: Holder, maxTotal: Int, maxPerSource: Int) -> Admission {
        lock.withLock { slots.admit(source, holder: holder, maxTotal: maxTotal, maxPerSource: maxPerSource) }
    }

    /// Gives back the slot of a handshake that was authenticated, refused or aborted; nothing for
    /// one that was evicted already.
    public func release(_ ticket: Ticket) {
        lock.withLock { slots.release(ticket) }
    }

    /// Handshakes pending now, in total and from `source`.
    public func count(from source: SourceBlock? = nil) -> Int {
        lock.withLock { source.map { slots.count(from: $0) } ?? slots.total }
    }

    /// Source blocks with a handshake pending now.
    public var sources: Int { lock.withLock { slots.sources } }
}
