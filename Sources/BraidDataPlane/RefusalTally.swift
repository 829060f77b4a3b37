import BraidCore
import BraidWire

/// Why a data connection ended before it proved who it is, as the log names it.
enum RefusalReason: Hashable, Sendable, CustomStringConvertible {
    /// Its bytes were refused by the handshake (malformed, truncated, bad MAC, replay, ...).
    case request(ConvertRefusal)
    /// No whole request within `handshake_timeout`.
    case timeout
    /// The client reset the connection, or the socket failed, during the handshake.
    case aborted
    /// Reset at accept: `max_pending` handshakes were pending.
    case maxPending
    /// Reset at accept: its source block had `max_pending_per_source` handshakes pending.
    case maxPendingPerSource
    /// Authenticated, for a destination the policy refuses; `rule` names the rule.
    case destination(rule: String)
    /// Pending when every slot was taken, the oldest of the heaviest source: its slot went to a newcomer.
    case evicted

    var description: String {
        switch self {
        case .request(let r): r.rawValue
        case .timeout: "timeout"
        case .aborted: "aborted"
        case .maxPending: "max_pending"
        case .maxPendingPerSource: "max_pending_per_source"
        case .destination(let rule): rule
        case .evicted: "evicted"
        }
    }
}

/// Counts connections turned away (before authentication, or for a refused destination), by
/// reason and by source block, so the log gets one summary per interval rather than one line per
/// connection: a flood cannot flood the log. Each connection's own reason goes to the debug log.
/// The data port counts `RefusalReason`s; the concentrator's control port counts its own reasons
/// (TLS refusals and its handshake limits) in another tally of the same kind.
///
/// One small lock, shared by the reactors; memory is bounded by `maxSources`: refusals from
/// further sources within one interval are counted, not named.
public final class RefusalTally<Reason: Hashable & Sendable & CustomStringConvertible>: @unchecked Sendable {
    /// What was counted since the last `take`.
    public struct Summary {
        public var total: Int
        /// Reasons, most frequent first.
        public var reasons: [(reason: Reason, count: Int)]
        /// The busiest source blocks, most refused first.
        public var topSources: [(source: SourceBlock, count: Int)]
        /// Source blocks counted but not in `topSources`.
        public var otherSources: Int
        /// Refusals from source blocks beyond the first `maxSources` of the interval.
        public var untracked: Int

        /// "timeout 180, bad_mac 12"
        public var reasonsText: String { reasons.map { "\($0.reason) \($0.count)" }.joined(separator: ", ") }

        /// "198.18.1.1 120, 2001:db8:10::/64 60, +3 more"
        public var sourcesText: String {
            var parts = topSources.map { "\($0.source) \($0.count)" }
            if otherSources > 0 { parts.append("+\(otherSources) more") }
            if untracked > 0 { parts.append("\(untracked) from sources not tracked") }
            return parts.joined(separator: ", ")
        }
    }

    public let maxSources: Int
    private let lock = Mutex()
    private var byReason: [Reason: Int] = [:]
    private var bySource: [SourceBlock: Int] = [:]
    private var untracked = 0
    private var total = 0
    /// Every refusal since start by reason, never reset by `take`: the metrics and the status
    /// document read it. Bounded by the reasons there are (a fixed set, and one per policy rule).
    private var sinceStart: [Reason: UInt64] = [:]

    public init(maxSources: Int = 1024) {
        self.maxSources = maxSources
    }

    public func record(_ reason: Reason, from source: SourceBlock) {
        lock.withLock {
            total += 1
            byReason[reason, default: 0] += 1
            sinceStart[reason, default: 0] &+= 1
            if bySource[source] != nil || bySource.count < maxSources {
                bySource[source, default: 0] += 1
            } else {
                untracked += 1
            }
        }
    }

    /// Refusals since start by reason, in the order of the reasons' names.
    public func totals() -> [(reason: Reason, count: UInt64)] {
        lock.withLock { sinceStart }.sorted { $0.key.description < $1.key.description }.map { ($0.key, $0.value) }
    }

    /// The counts since the last call, which start again from zero; nil when there were none.
    public func take(top: Int = 3) -> Summary? {
        let (total, reasons, sources, untracked) = lock.withLock {
            defer {
                self.total = 0
                byReason = [:]
                bySource = [:]
                self.untracked = 0
            }
            return (self.total, byReason, bySource, self.untracked)
        }
        guard total > 0 else { return nil }
        // Ties in a stable order (by name), so the line reads the same for the same counts.
        let byCount = sources.sorted { ($0.value, $1.key.description) > ($1.value, $0.key.description) }
        return Summary(
            total: total,
            reasons: reasons.sorted { ($0.value, $1.key.description) > ($1.value, $0.key.description) }
                .map { ($0.key, $0.value) },
            topSources: byCount.prefix(top).map { ($0.key, $0.value) },
            otherSources: max(0, byCount.count - top), untracked: untracked)
    }
}
