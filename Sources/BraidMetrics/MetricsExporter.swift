import BraidCore
import CoreMetrics
import NIOConcurrencyHelpers
import Prometheus

/// The metrics of one daemon: swift-metrics counters and gauges backed by a Prometheus registry
/// of their own (not the process-wide `MetricsSystem`, so two exporters in one test process do
/// not share series), filled from a status document at each scrape.
///
/// Counters follow totals the daemon already keeps (bytes per meter, refusals since start, the
/// kernel's device counters): each scrape advances a counter by what its total grew since the
/// last one. A counter therefore never goes down, whatever happens to the source: a reload keeps
/// the daemon's totals, and a source that starts again from zero (an uplink device deleted and
/// created again) is taken as a reset and its new total added. Gauges are set to the document's
/// value; a gauge whose series is no longer in the document (an uplink removed by a reload) is
/// dropped from the exposition, a counter stays at its last value until the daemon restarts.
public final class MetricsExporter: @unchecked Sendable {
    /// A series: its name and its labels in order.
    struct Series: Hashable {
        var name: String
        var labels: [String]

        init(_ name: String, _ labels: [(String, String)]) {
            self.name = name
            self.labels = labels.flatMap { [$0.0, $0.1] }
        }

        var dimensions: [(String, String)] {
            stride(from: 0, to: labels.count, by: 2).map { (labels[$0], labels[$0 + 1]) }
        }
    }

    private let lock = NIOLock()
    private let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    private var counters: [Series: (counter: CoreMetrics.Counter, seen: UInt64)] = [:]
    private var gauges: [Series: CoreMetrics.Gauge] = [:]
    private var gaugesSet: Set<Series> = []

    public init() {
        factory = PrometheusMetricsFactory(registry: registry)
    }

    /// Records one document's values and returns the exposition text. `record` calls `count`
    /// and `gauge` for every series the document has.
    public func scrape(_ record: (MetricsExporter) -> Void) -> [UInt8] {
        lock.withLock {
            gaugesSet = []
            record(self)
            for (series, gauge) in gauges where !gaugesSet.contains(series) {
                gauge.destroy()
                gauges[series] = nil
            }
            return registry.emitToBuffer()
        }
    }

    /// Advances the counter `name{labels}` to the source's `total`. Call only from `scrape`'s closure.
    public func count(_ name: String, _ labels: [(String, String)] = [], total: UInt64) {
        let series = Series(name, labels)
        guard let entry = counters[series] else {
            let counter = CoreMetrics.Counter(label: name, dimensions: labels, factory: factory)
            counter.increment(by: clamp(total))
            counters[series] = (counter, total)
            return
        }
        // A total below the last one: its source started again from zero, and all of it is new.
        let grown = total >= entry.seen ? total - entry.seen : total
        if grown > 0 { entry.counter.increment(by: clamp(grown)) }
        counters[series] = (entry.counter, total)
    }

    /// Sets the gauge `name{labels}`. Call only from `scrape`'s closure.
    public func gauge(_ name: String, _ labels: [(String, String)] = [], _ value: Double) {
        let series = Series(name, labels)
        let gauge =
            gauges[series]
            ?? {
                let g = CoreMetrics.Gauge(label: name, dimensions: labels, factory: factory)
                gauges[series] = g
                return g
            }()
        gauge.record(value)
        gaugesSet.insert(series)
    }

    private func clamp(_ n: UInt64) -> Int64 { n > UInt64(Int64.max) ? Int64.max : Int64(n) }
}
