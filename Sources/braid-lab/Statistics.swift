/// Order statistics over latency samples (milliseconds).
enum Statistics {
    /// The median; the mean of the two middle samples when the count is even.
    static func median(_ samples: [Double]) -> Double? {
        guard !samples.isEmpty else { return nil }
        let sorted = samples.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// Nearest-rank percentile (p in 0...1) of samples already sorted ascending.
    static func percentile(sorted: [Double], _ p: Double) -> Double? {
        guard !sorted.isEmpty else { return nil }
        let rank = Int((p * Double(sorted.count)).rounded(.up))
        return sorted[min(sorted.count, max(1, rank)) - 1]
    }
}

extension JSONValue {
    /// A rounded number, or null when there is no sample to report.
    static func optional(_ value: Double?) -> JSONValue {
        value.map { .rounded($0) } ?? .null
    }
}
