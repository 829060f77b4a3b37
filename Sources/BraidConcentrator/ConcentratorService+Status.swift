import BraidConfig
import BraidCore
import BraidDataPlane
import BraidMetrics
import BraidStatus

/// The concentrator's status document and the metrics made from it. Every value here is one the
/// daemon keeps anyway behind short locks or atomics (the subscriber book, the forwarder's
/// counters and refusal tallies), so the document can be made on any thread: the local socket's
/// and the metrics listener's alike.
extension ConcentratorService {
    /// The document `braid status` shows, from the values of this moment.
    func status() -> ConcentratorStatus {
        let policy = destinationPolicy.current
        let config = self.config
        let subscribers = book?.statusViews(configured: config.subscribers.map(\.name)) ?? []
        var refusals: [RefusalCount] = []
        if let totals = forwarderRefusals() {
            refusals += totals.unauthenticated.map {
                RefusalCount(listener: "data", reason: $0.reason, count: $0.count)
            }
            refusals += totals.destination.map {
                RefusalCount(listener: "destination", reason: $0.reason, count: $0.count)
            }
            refusals += totals.session.map { RefusalCount(listener: "session", reason: $0.reason, count: $0.count) }
        }
        refusals += (controlServer?.refusalTotals() ?? []).map {
            RefusalCount(listener: "control", reason: $0.reason, count: $0.count)
        }
        let sessions = forwarderSessions()
        return ConcentratorStatus(
            listen: "\(Endpoint(address: config.listen, port: config.port))",
            denyDest: policy.denyDestinations.map { "\($0)" }, allowDest: policy.allowDestinations.map { "\($0)" },
            denyPort: policy.denyPorts.map { "\($0)" }, allowPort: policy.allowPorts.map { "\($0)" },
            time: Double(wallClockMillis()) / 1000,
            sessions: SessionCount(active: sessions.active, total: sessions.total),
            bytes: ByteCount(
                up: subscribers.reduce(0) { $0 &+ $1.bytes.up }, down: subscribers.reduce(0) { $0 &+ $1.bytes.down }),
            controlChannels: book?.channelCount ?? 0, subscribers: subscribers, refusals: refusals)
    }

    /// The document as the local socket sends it.
    func statusText() -> String {
        do {
            return try JSONText.encode(status())
        } catch {
            // Cannot happen with these types; say so rather than answer nothing.
            return "{\"role\":\"concentrator\",\"error\":\"status document not encoded: \(error)\"}"
        }
    }

    /// Starts `metrics_listen`, if set, and the once-a-second rate sampling the document shows.
    func startMetrics(on reactor: Reactor) {
        let book = self.book
        func sample() {
            book?.sampleRates()
            reactor.schedule(afterNanos: 1_000_000_000) { sample() }
        }
        reactor.execute { sample() }
        guard let listen = config.metricsListen else { return }
        // Subscribers are not cut off for the metrics' sake: a listener that cannot be bound is an
        // error in the log, and the concentrator serves on without it.
        do {
            metrics = try MetricsEndpoint(bind: listen, logger: logger) { [weak self] exporter in
                guard let self else { return }
                ConcentratorMetrics.record(self.status(), into: exporter)
            }
            logger.notice("metrics listening", metadata: ["address": "http://\(listen)/metrics"])
        } catch {
            logger.error("metrics not served: metrics_listen \(listen): \(error)")
        }
    }
}
