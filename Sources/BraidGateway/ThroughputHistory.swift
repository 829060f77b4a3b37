import BraidStatus
/// The last minutes of each uplink's throughput, for the status page's graphs: one sample of
/// the uplink devices' byte counters a second, kept by the daemon rather than by each browser.
///
/// Why here and not in the page: a page opened after an uplink misbehaved shows the minutes
/// before it was opened, which is what an installer diagnosing "only one uplink is used" needs;
/// rates come from counters read at known monotonic instants, so a browser polling late or
/// twice in one second does not make the graph jump; and ten open pages read one history
/// instead of keeping ten. It costs `capacity` samples of two counters per uplink.
///
/// No I/O: the caller reads the counters and the clock.
struct ThroughputHistory {
    /// One reading of every uplink's counters.
    struct Sample {
        var nanos: UInt64
        var counters: [String: (tx: UInt64, rx: UInt64)]
    }

    /// Rates kept per uplink; one more sample than that is held to compute the oldest rate.
    let capacity: Int
    private(set) var samples: [Sample] = []
    /// Counts `record` calls, so a reader can tell whether its rendering is still current.
    private(set) var generation: UInt64 = 0

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    mutating func record(nanos: UInt64, counters: [(name: String, tx: UInt64, rx: UInt64)]) {
        var byName: [String: (tx: UInt64, rx: UInt64)] = [:]
        for c in counters { byName[c.name] = (c.tx, c.rx) }
        samples.append(Sample(nanos: nanos, counters: byName))
        // A few hundred entries: shifting them once a second is cheaper than a ring's bookkeeping.
        if samples.count > capacity + 1 { samples.removeFirst(samples.count - capacity - 1) }
        generation &+= 1
    }

    /// Bits per second of one uplink between consecutive samples, oldest first; nil where the
    /// uplink was not sampled at both ends or its counter went back (the device was recreated).
    func rates(of name: String) -> (tx: [Double?], rx: [Double?]) {
        var tx: [Double?] = []
        var rx: [Double?] = []
        guard samples.count > 1 else { return ([], []) }
        for i in 1..<samples.count {
            let a = samples[i - 1]
            let b = samples[i]
            let seconds = Double(b.nanos &- a.nanos) / 1e9
            guard seconds > 0, let before = a.counters[name], let after = b.counters[name] else {
                tx.append(nil)
                rx.append(nil)
                continue
            }
            tx.append(after.tx >= before.tx ? Double(after.tx - before.tx) * 8 / seconds : nil)
            rx.append(after.rx >= before.rx ? Double(after.rx - before.rx) * 8 / seconds : nil)
        }
        return (tx, rx)
    }

    /// The page's `/history.json`: for each of `names` (the uplinks in configuration order) its
    /// rates in bits per second, oldest first, and each rate's end as milliseconds before the
    /// newest sample.
    ///
    ///     {"ages_ms":[2000,1000,0],"uplinks":[{"name":"dsl","tx_bps":[..],"rx_bps":[..]}]}
    func json(names: [String]) -> String {
        let newest = samples.last?.nanos ?? 0
        let document = HistoryDocument(
            agesMillis: samples.dropFirst().map { (newest &- $0.nanos) / 1_000_000 },
            uplinks: names.map { name in
                let r = rates(of: name)
                let bits = { (values: [Double?]) in values.map { $0.map { Int64($0.rounded()) } } }
                return HistoryDocument.Uplink(name: name, tx: bits(r.tx), rx: bits(r.rx))
            })
        return (try? JSONText.encode(document)) ?? "{}"
    }
}

/// `/history.json`, encoded by the status documents' encoder.
struct HistoryDocument: Encodable {
    struct Uplink: Encodable {
        var name: String
        var tx: [Int64?]
        var rx: [Int64?]

        enum CodingKeys: String, CodingKey {
            case name
            case tx = "tx_bps"
            case rx = "rx_bps"
        }
    }

    var agesMillis: [UInt64]
    var uplinks: [Uplink]

    enum CodingKeys: String, CodingKey {
        case agesMillis = "ages_ms"
        case uplinks
    }
}
