import BraidCore
import BraidHTTP
import Logging

/// `option metrics_listen`: the Prometheus text exposition at `/metrics` on the project's bounded
/// HTTP listener. Each scrape asks the role for its current status document (a snapshot it keeps;
/// the route runs on the listener's event loop and must not block) and records it.
public final class MetricsEndpoint {
    public let server: HTTPServer
    public let exporter: MetricsExporter

    /// Prometheus' text format, version 0.0.4.
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Binds `endpoint`. `record` fills the exporter from the role's newest document.
    public init(
        bind endpoint: Endpoint, limits: HTTPServerLimits = HTTPServerLimits(), logger: Logger,
        record: @escaping @Sendable (MetricsExporter) -> Void
    ) throws {
        let exporter = MetricsExporter()
        self.exporter = exporter
        server = try HTTPServer(
            bind: endpoint,
            routes: [
                "/metrics": {
                    HTTPAnswer(
                        contentType: MetricsEndpoint.contentType, body: exporter.scrape(record),
                        headers: [("Cache-Control", "no-store")])
                }
            ], limits: limits, logger: logger)
    }

    public func stop() { server.stop() }
}
