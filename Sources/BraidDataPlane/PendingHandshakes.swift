import BraidCore

#if canImport(Glibc)
import Glibc
#endif

/// Where a connection comes from, as per-source limits and the refusal summary count it: an IPv4
/// address, or the /64 an IPv6 address lies in. A subscriber line is given a /64 at least, so
/// whoever holds one must not pass for 2^64 sources. IPv4-mapped IPv6 addresses (a dual-stack
/// listener's IPv4 clients) count as the IPv4 address. A plain value: hashing it allocates nothing.
public struct SourceBlock: Hashable, Sendable, CustomStringConvertible {
    /// The IPv4 address in the low 32 bits, or the first 64 bits of the IPv6 address.
    public let bits: UInt64
    public let isIPv6: Bool

    public init(_ address: IPAddress) {
        switch address {
        case .v4(let v):
            self.init(ipv4: v)
        case .v6(let b):
            self.init(ipv6Prefix: b.prefix(8).reduce(0) { $0 << 8 | UInt64($1) })
        }
    }

    public init(ipv4 address: UInt32) {
        bits = UInt64(address)
        isIPv6 = false
    }

    public init(ipv6Prefix: UInt64) {
        bits = ipv6Prefix
        isIPv6 = true
    }

    /// The address in a socket address (IPv4, IPv6 or IPv4-mapped IPv6), read straight from its
    /// bytes (no address object is built); nil for another family.
    init?(_ ss: sockaddr_storage) {
        var ss = ss
        let block = withUnsafeBytes(of: &ss) { raw -> SourceBlock? in
            switch Int32(raw.load(as: sockaddr.self).sa_family) {
            case AF_INET:
                return SourceBlock(ipv4: UInt32(bigEndian: raw.load(as: sockaddr_in.self).sin_addr.s_addr))
            case AF_INET6:
                let sin6 = raw.load(as: sockaddr_in6.self)
                return withUnsafeBytes(of: sin6.sin6_addr) { a in
                    let high = a.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                    // ::ffff:a.b.c.d: the first 80 bits zero, then 0xffff.
                    if high == 0 && a[8] == 0 && a[9] == 0 && a[10] == 0xff && a[11] == 0xff {
                        return SourceBlock(ipv4: a[12...].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
                    }
                    return SourceBlock(ipv6Prefix: high)
                }
            default:
                return nil
            }
        }
        guard let block else { return nil }
        self = block
    }

    public var description: String {
        guard isIPv6 else { return "\(IPAddress.v4(UInt32(truncatingIfNeeded: bits)))" }
        let bytes = (0..<8).map { UInt8(truncatingIfNeeded: bits >> (56 - 8 * UInt64($0))) }
        return "\(IPAddress.v6(bytes + [UInt8](repeating: 0, count: 8)))/64"
    }
}

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
