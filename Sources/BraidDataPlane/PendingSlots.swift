import BraidCore

/// Counts per key with the heaviest key at hand: add, remove and `heaviest` cost O(1), whatever
/// the number of keys (keys are kept in sets by count, and counts move by one).
struct HeaviestTally<Key: Hashable> {
    private(set) var counts: [Key: Int] = [:]
    private var byCount: [Int: Set<Key>] = [:]
    /// The largest count, 0 when empty.
    private(set) var maxCount = 0

    var isEmpty: Bool { counts.isEmpty }

    func count(_ key: Key) -> Int { counts[key, default: 0] }

    /// One of the keys with `maxCount`.
    var heaviest: Key? { byCount[maxCount]?.first }

    mutating func add(_ key: Key) {
        let old = counts[key, default: 0]
        move(key, from: old, to: old + 1)
        counts[key] = old + 1
        maxCount = max(maxCount, old + 1)
    }

    mutating func remove(_ key: Key) {
        guard let old = counts[key] else { return }
        move(key, from: old, to: old - 1)
        counts[key] = old > 1 ? old - 1 : nil
        // The key itself now has old - 1, so that is the new maximum when its set emptied.
        if old == maxCount && byCount[old] == nil { maxCount = old - 1 }
    }

    private mutating func move(_ key: Key, from old: Int, to new: Int) {
        if old > 0 {
            byCount[old]?.remove(key)
            if byCount[old]?.isEmpty == true { byCount[old] = nil }
        }
        if new > 0 { byCount[new, default: []].insert(key) }
    }
}

/// The pending-handshake slots of a concentrator, as policy without I/O: who holds them, the
/// limits, and whom to evict when they are all taken. `Holder` is what the caller needs to end an
/// evicted handshake (the data plane keeps a weak reference to its acceptor).
///
/// Sources nest in three levels: an IPv6 /64 (a subscriber line) in its /48 (a site) in its /32
/// (a provider); an IPv4 address in its /24 in its /16. One /64 or address holds at most
/// `maxPerSource` slots. When all `maxTotal` slots are taken, a newcomer is not refused (with
/// `Eviction.heaviest`, the data port's; the control port's `.overFairShare` is stricter): the
/// oldest handshake of the heaviest source is evicted for it, the heaviest found by walking from
/// the top level down, so whoever holds the most, at whatever level they spread, gives way:
///
/// - 16 /64s of one /48 holding 1,024 idle connections each (the default 16,384 in all) are one
///   /48 holding 16,384; a subscriber's gateway elsewhere, with a handful pending, takes its slot
///   from them.
/// - An attacker spreading over 65,536 /48s of one /32 weighs 16,384 at the /32 level.
/// - Only a newcomer whose own source is the heaviest at every level is refused (evicting its
///   own kind would change nothing but which of its connections fails).
///
/// A real gateway holds a slot for one round trip (its request rides in the SYN or right behind
/// it), so it is never the oldest of the heaviest; an idle flood connection is. Hard limits at
/// the /48 or /32 level were not chosen: a big provider's thousands of subscribers share one /32
/// or even one IPv4 /16 (CGNAT), and a limit there would refuse them all under load with no
/// attacker present; eviction only acts when every slot is taken, and only on the heaviest.
///
/// Work per call: a few dictionary updates per level; no pass over sources or handshakes.
public struct PendingSlots<Holder> {
    /// A held slot, to give back with `release`.
    public typealias Ticket = UInt64

    /// Whom a newcomer may take a slot from when every slot is taken.
    public enum Eviction: Sendable {
        /// The oldest handshake of the heaviest source, found from the top level down; only a
        /// newcomer whose source is the heaviest at every level is refused. For the data port,
        /// where a genuine handshake holds its slot for one round trip.
        case heaviest
        /// Only from a source over its fair share, for a newcomer well under its own; otherwise the
        /// newcomer is refused and the handshakes in flight keep their slots. For the control port,
        /// where a genuine TLS handshake holds its slot for as long as the server takes to compute
        /// it: under a storm of gateways (each its own source, the same weight at every level)
        /// `heaviest` evicts handshakes faster than the server can finish them, and none does.
        ///
        /// At each level from the top, among the aggregates in the newcomer's parent (the pool is
        /// what they hold; n those holding a slot, the newcomer's counted), the share is pool / n.
        /// The heaviest gives way when it holds more than the share, the newcomer's aggregate less
        /// than half of it, and the heaviest at least two more than the newcomer's (so an eviction
        /// always makes the split fairer). When the newcomer's aggregate holds its share or more,
        /// the competition is inside it: the same test one level down. Genuine gateways, one slot
        /// each, never reach two more than one another at the block level, and aggregates of them
        /// filled by random arrivals stay within a factor two of each other; a source that filled
        /// the slots before a storm gives way down to about half the share.
        case overFairShare
    }

    public enum Admission {
        /// The slot is `ticket`; `evicted` held a slot that was taken for it: end its handshake.
        case admitted(Ticket, evicted: Holder?)
        /// Every slot is taken, and the newcomer's source is the heaviest at every level.
        case overTotal
        /// The source block holds `maxPerSource` slots already.
        case overSource
    }

    /// The aggregates a source block lies in, coarsest first.
    struct Path: Hashable {
        let wide: SourceBlock
        let site: SourceBlock
        let block: SourceBlock

        init(_ block: SourceBlock) {
            self.block = block
            if block.isIPv6 {
                site = SourceBlock(ipv6Prefix: block.bits & 0xffff_ffff_ffff_0000)  // /48
                wide = SourceBlock(ipv6Prefix: block.bits & 0xffff_ffff_0000_0000)  // /32
            } else {
                site = SourceBlock(ipv4: UInt32(truncatingIfNeeded: block.bits & 0xffff_ff00))  // /24
                wide = SourceBlock(ipv4: UInt32(truncatingIfNeeded: block.bits & 0xffff_0000))  // /16
            }
        }
    }

    /// A block's handshakes, oldest first; tickets already released are skipped when met.
    private struct Queue {
        var tickets: [Ticket] = []
        var head = 0
    }

    private var wides = HeaviestTally<SourceBlock>()
    private var sites: [SourceBlock: HeaviestTally<SourceBlock>] = [:]
    private var blocks: [SourceBlock: HeaviestTally<SourceBlock>] = [:]
    private var queues: [SourceBlock: Queue] = [:]
    private var holders: [Ticket: (path: Path, holder: Holder)] = [:]
    private var nextTicket: Ticket = 1

    public init() {}

    /// Slots taken.
    public var total: Int { holders.count }

    /// Slots held by `block`.
    public func count(from block: SourceBlock) -> Int { blocks[Path(block).site]?.count(block) ?? 0 }

    /// Source blocks holding a slot.
    public var sources: Int { queues.count }

    /// Tickets in the blocks' queues, released ones not yet dropped included (for tests).
    var queuedTickets: Int { queues.values.reduce(0) { $0 + $1.tickets.count - $1.head } }

    /// Takes a slot for `holder`'s handshake from `block`, evicting another when all are taken
    /// (see the type's comment). Every `.admitted` is matched by a `release` of its ticket (a
    /// ticket evicted meanwhile is released already; releasing it again does nothing).
    public mutating func admit(
        _ block: SourceBlock, holder: Holder, maxTotal: Int, maxPerSource: Int, eviction: Eviction = .heaviest
    ) -> Admission {
        let path = Path(block)
        guard count(from: block) < maxPerSource else { return .overSource }
        var evicted: Holder?
        if total >= maxTotal {
            let victim = eviction == .heaviest ? victimBlock(for: path) : overShareBlock(for: path)
            guard let victim, let holder = evictOldest(of: victim) else { return .overTotal }
            evicted = holder
        }
        let ticket = nextTicket
        nextTicket += 1
        holders[ticket] = (path, holder)
        wides.add(path.wide)
        sites[path.wide, default: HeaviestTally()].add(path.site)
        blocks[path.site, default: HeaviestTally()].add(path.block)
        queues[path.block, default: Queue()].tickets.append(ticket)
        return .admitted(ticket, evicted: evicted)
    }

    /// Gives back a slot: its handshake authenticated, was refused, or ended.
    public mutating func release(_ ticket: Ticket) {
        guard let (path, _) = holders.removeValue(forKey: ticket) else { return }
        wides.remove(path.wide)
        sites[path.wide]?.remove(path.site)
        if sites[path.wide]?.isEmpty == true { sites[path.wide] = nil }
        blocks[path.site]?.remove(path.block)
        if blocks[path.site]?.isEmpty == true { blocks[path.site] = nil }
        guard let left = blocks[path.site]?.count(path.block), left > 0 else {
            queues[path.block] = nil
            return
        }
        // Released out of order, a ticket stays in its queue until met; drop them in one pass once
        // they outnumber the live ones, so the queue stays within twice the block's slots.
        if let q = queues[path.block], q.tickets.count > 2 * left + 8 {
            queues[path.block] = Queue(tickets: q.tickets[q.head...].filter { holders[$0] != nil }, head: 0)
        }
    }

    /// The block to evict from for a newcomer at `path`: at the first level, from the top, where
    /// the newcomer's aggregate is lighter than the heaviest, the heaviest, then the heaviest
    /// below it; nil when the newcomer's own aggregates are the heaviest all the way down.
    private func victimBlock(for path: Path) -> SourceBlock? {
        if wides.count(path.wide) < wides.maxCount, let wide = wides.heaviest {
            return heaviestBlock(in: wide)
        }
        if let s = sites[path.wide], s.count(path.site) < s.maxCount, let site = s.heaviest {
            return blocks[site]?.heaviest
        }
        if let b = blocks[path.site], b.count(path.block) < b.maxCount {
            return b.heaviest
        }
        return nil
    }

    /// The block to evict from for a newcomer at `path` under `.overFairShare`; nil when no
    /// aggregate is over its share while the newcomer's is well under its own.
    private func overShareBlock(for path: Path) -> SourceBlock? {
        // Top level: the pool is every slot.
        let wide = wides.count(path.wide)
        let wideShare = FairShare(pool: total, holders: wides.counts.count, newcomer: wide)
        if let heaviest = wides.heaviest, wideShare.givesWay(wides.maxCount) { return heaviestBlock(in: heaviest) }
        guard wideShare.atOrOver, let siteTally = sites[path.wide] else { return nil }
        // Inside the newcomer's /32 (or IPv4 /16): its sites share what it holds.
        let site = siteTally.count(path.site)
        let siteShare = FairShare(pool: wide, holders: siteTally.counts.count, newcomer: site)
        if let heaviest = siteTally.heaviest, siteShare.givesWay(siteTally.maxCount) { return blocks[heaviest]?.heaviest }
        guard siteShare.atOrOver, let blockTally = blocks[path.site] else { return nil }
        // Inside the newcomer's /48 (or IPv4 /24): its blocks share what it holds.
        let blockShare = FairShare(pool: site, holders: blockTally.counts.count, newcomer: blockTally.count(path.block))
        if let heaviest = blockTally.heaviest, blockShare.givesWay(blockTally.maxCount) { return heaviest }
        return nil
    }

    /// One level's fair share, in integers: `pool` slots among `holders` aggregates holding one,
    /// and the newcomer's aggregate, which holds `newcomer` (counted among them when it holds none).
    private struct FairShare {
        let pool: Int
        let n: Int
        let newcomer: Int

        init(pool: Int, holders: Int, newcomer: Int) {
            self.pool = pool
            self.n = holders + (newcomer == 0 ? 1 : 0)
            self.newcomer = newcomer
        }

        /// The heaviest, holding `heaviest`, is over the share (heaviest > pool / n), the newcomer's
        /// under half of it (newcomer < pool / 2n), and the heaviest at least two ahead.
        func givesWay(_ heaviest: Int) -> Bool {
            heaviest * n > pool && 2 * newcomer * n < pool && heaviest >= newcomer + 2
        }

        /// The newcomer's aggregate holds its share or more.
        var atOrOver: Bool { newcomer * n >= pool }
    }

    private func heaviestBlock(in wide: SourceBlock) -> SourceBlock? {
        guard let site = sites[wide]?.heaviest else { return nil }
        return blocks[site]?.heaviest
    }

    /// Releases the oldest live ticket of `block`, returning its holder.
    private mutating func evictOldest(of block: SourceBlock) -> Holder? {
        guard var q = queues[block] else { return nil }
        while q.head < q.tickets.count {
            let ticket = q.tickets[q.head]
            q.head += 1
            if let entry = holders[ticket] {
                queues[block] = q
                release(ticket)
                return entry.holder
            }
        }
        queues[block] = nil
        return nil
    }
}
