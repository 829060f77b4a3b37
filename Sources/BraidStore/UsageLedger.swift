/// Bytes of one subscriber, each way, as the concentrator sees them: up is from the subscriber
/// (towards the origin), down towards it.
public struct Traffic: Equatable, Sendable {
    public var up: UInt64
    public var down: UInt64

    public init(up: UInt64 = 0, down: UInt64 = 0) {
        self.up = up
        self.down = down
    }

    public var isZero: Bool { up == 0 && down == 0 }
}

/// One row of `braid_usage`: a subscriber's bytes during one accounting period on one concentrator.
public struct UsageRow: Equatable, Sendable {
    public var subscriber: String
    /// Unix time in milliseconds.
    public var periodStart: Int64
    public var periodEnd: Int64
    public var traffic: Traffic

    public init(subscriber: String, periodStart: Int64, periodEnd: Int64, traffic: Traffic) {
        self.subscriber = subscriber
        self.periodStart = periodStart
        self.periodEnd = periodEnd
        self.traffic = traffic
    }
}

/// Usage rows waiting to be written, in order. While the database is away rows pile up; past
/// `maxRows` the rows not being written are merged per subscriber into one wider row each, so the
/// memory stays bounded by the number of subscribers and no byte is lost, only the detail of when.
/// Rows handed out by `nextBatch` are not touched until `written` or `failed` says how it went:
/// a batch whose commit was lost is sent again as it was, and the table's key counts it once.
public struct UsageLedger: Sendable {
    public let maxRows: Int
    public private(set) var rows: [UsageRow] = []
    /// How many rows at the front are in a batch being written.
    public private(set) var inFlight = 0
    /// How many rows at the front were in a batch whose outcome is unknown: they may be in the
    /// table already, so they are sent again exactly as they were and never merged.
    private var uncertain = 0
    /// How many times rows were merged to stay under `maxRows`.
    public private(set) var merges = 0

    public init(maxRows: Int = 100_000) {
        self.maxRows = max(1, maxRows)
    }

    /// Closes one accounting period: a row for each subscriber that moved bytes in it.
    public mutating func close(periodStart: Int64, periodEnd: Int64, traffic: [String: Traffic]) {
        for (name, t) in traffic.sorted(by: { $0.key < $1.key }) where !t.isZero {
            rows.append(UsageRow(subscriber: name, periodStart: periodStart, periodEnd: periodEnd, traffic: t))
        }
        if rows.count > maxRows { mergeWaitingRows() }
    }

    /// Bytes not yet written, per subscriber (for status and tests).
    public var pendingTraffic: [String: Traffic] {
        var out: [String: Traffic] = [:]
        for r in rows {
            out[r.subscriber, default: Traffic()].up += r.traffic.up
            out[r.subscriber, default: Traffic()].down += r.traffic.down
        }
        return out
    }

    /// Up to `limit` rows to write now, oldest first; nil while a batch is out or nothing waits.
    public mutating func nextBatch(limit: Int = 500) -> [UsageRow]? {
        guard inFlight == 0, !rows.isEmpty else { return nil }
        inFlight = min(limit, rows.count)
        return Array(rows.prefix(inFlight))
    }

    /// The batch is committed: its rows go.
    public mutating func written() {
        rows.removeFirst(inFlight)
        uncertain = max(0, uncertain - inFlight)
        inFlight = 0
    }

    /// The batch was not committed (or nobody knows): its rows stay, to be sent again unchanged.
    public mutating func failed() {
        uncertain = max(uncertain, inFlight)
        inFlight = 0
    }

    private mutating func mergeWaitingRows() {
        let kept = max(inFlight, uncertain)
        let waiting = rows[kept...]
        var merged: [String: UsageRow] = [:]
        var order: [String] = []
        for r in waiting {
            if var m = merged[r.subscriber] {
                m.periodStart = min(m.periodStart, r.periodStart)
                m.periodEnd = max(m.periodEnd, r.periodEnd)
                m.traffic.up += r.traffic.up
                m.traffic.down += r.traffic.down
                merged[r.subscriber] = m
            } else {
                merged[r.subscriber] = r
                order.append(r.subscriber)
            }
        }
        rows = Array(rows[..<kept]) + order.map { merged[$0]! }
        merges += 1
    }
}
