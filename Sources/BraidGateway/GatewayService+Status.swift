import BraidCore
import BraidDataPlane
import BraidMetrics
import BraidStatus

/// The gateway's status document, for `braid status` and the metrics. The uplinks' state belongs
/// to the control reactor, so the document is made there: at each local question, and once a
/// second for the metrics listener, which reads the newest one (at most a second old).
extension GatewayService {
    /// The control channel in `braid status`: off (pre-shared key only), up or down, the key in use.
    func controlStatus() -> GatewayControlStatus {
        guard let client = controlClient else { return GatewayControlStatus(state: "off") }
        let keys = client.dataKeys
        return GatewayControlStatus(
            state: client.established ? "up" : "down", key: keys.keyID, serviceClass: keys.serviceClass?.name,
            error: client.lastError)
    }

    /// The document of this moment. On the control reactor only.
    func status() -> GatewayStatus? {
        guard let supervisor, let forwarder = forwarderForStatus else { return nil }
        var document = supervisor.status(sessions: forwarder.counters, bytes: forwarder.bytes, control: controlStatus())
        document.rules = ruleStatus()
        if let choice {
            let host = choice.current.host
            document.concentrator = host.address.map { "\(Endpoint(address: $0, port: config.port))" }
                ?? "\(host):\(config.port)"
            document.concentrators = concentratorsStatus(choice)
        }
        return document
    }

    /// Every configured concentrator: its health as the choice judges it, and its channel.
    func concentratorsStatus(_ choice: ConcentratorChoice) -> [ConcentratorEntryStatus] {
        let now = monotonicNanos()
        let wall = Double(wallClockMillis()) / 1000
        let at = { (t: UInt64) in rounded(wall - Double(now &- t) / 1e9, 3) }
        return choice.servers.map { s in
            let link = links[s.host]
            var entry = ConcentratorEntryStatus(
                server: "\(s.host)", state: "unknown", inUse: s.host == choice.current.host,
                addresses: s.addresses.all.map { "\($0)" },
                control: link?.client.map { $0.established ? "up" : "down" } ?? "off",
                key: link?.client?.established == true ? link?.keys.keyID : nil, error: link?.client?.lastError)
            switch choice.health(s, now: now) {
            case .unknown: break
            case .healthy(let since):
                entry.state = "up"
                entry.since = at(since)
            case .down(let since, let reason):
                entry.state = "down"
                entry.since = at(since)
                entry.error = reason
            }
            return entry
        }
    }

    /// The document as the local socket sends it.
    func statusText() -> String {
        guard let document = status() else { return "{}" }
        published.set(document)
        do {
            return try JSONText.encode(document)
        } catch {
            return "{\"role\":\"gateway\",\"error\":\"status document not encoded: \(error)\"}"
        }
    }

    /// Publishes the document every second and, with `metrics_listen`, serves the metrics made from it.
    func startMetrics(on reactor: Reactor) {
        guard let listen = config.metricsListen else { return }
        reactor.execute { [weak self] in self?.publishLoop(reactor) }
        let published = self.published
        // The metrics are not worth the data path: a listener that cannot be bound (its address
        // not up yet, its port taken) is an error in the log, and the gateway runs on without it.
        do {
            metrics = try MetricsEndpoint(bind: listen, logger: logger) { exporter in
                guard let document = published.get() else { return }
                GatewayMetrics.record(document, into: exporter)
            }
            logger.notice("metrics listening", metadata: ["address": "http://\(listen)/metrics"])
        } catch {
            logger.error("metrics not served: metrics_listen \(listen): \(error)")
        }
    }

    private func publishLoop(_ reactor: Reactor) {
        if let document = status() { published.set(document) }
        reactor.schedule(afterNanos: 1_000_000_000) { [weak self] in self?.publishLoop(reactor) }
    }
}

/// The newest gateway status document, written by the control reactor and read by the metrics
/// listener's thread.
final class PublishedStatus: @unchecked Sendable {
    private let lock = Mutex()
    private var document: GatewayStatus?

    func set(_ d: GatewayStatus) { lock.withLock { document = d } }
    func get() -> GatewayStatus? { lock.withLock { document } }
}
