import BraidCore
import BraidDataPlane
import BraidHTTP
import Logging

/// The gateway's read-only status page on its LAN address: `/` is the page (StatusPage+HTML),
/// `/status.json` the same document `braid status --json` prints, `/history.json` the last five
/// minutes of each uplink's throughput (ThroughputHistory).
///
/// What it costs does not depend on how many browsers watch: the control loop publishes the
/// document and a counter sample once a second (and the document again at each uplink
/// transition, so a page shows an uplink down as soon as the probes say so); requests, on the
/// HTTP listener's own thread, only copy the bytes last published, and the history is rendered
/// at most once per sample whoever asks. The listener's own bounds (HTTPServerLimits) cap
/// connections and idle time.
final class StatusPage: @unchecked Sendable {
    /// Samples kept: five minutes at one a second.
    static let historySeconds = 300

    private let logger: Logger
    private let lock = Mutex()
    private var document: [UInt8] = Array("{}".utf8)
    private var history = ThroughputHistory(capacity: StatusPage.historySeconds)
    private var uplinkNames: [String] = []
    private var rendered: (generation: UInt64, bytes: [UInt8])?
    /// Touched by the control loop only.
    private var server: HTTPServer?
    /// The endpoint the last failed bind was for, so a retry that fails the same way is not logged again.
    private var failedEndpoint: Endpoint?

    init(logger: Logger) {
        self.logger = logger
    }

    /// Where the page is served now, nil when it is not.
    var endpoint: Endpoint? { server?.endpoint }

    /// Replaces the document `/status.json` answers with. Any thread.
    func publish(document text: String) {
        let bytes = Array(text.utf8)
        lock.withLock { document = bytes }
    }

    /// Adds a counter sample for the graphs. Any thread.
    func record(nanos: UInt64, counters: [(name: String, tx: UInt64, rx: UInt64)]) {
        lock.withLock {
            history.record(nanos: nanos, counters: counters)
            uplinkNames = counters.map(\.name)
        }
    }

    /// Serves at `endpoint`, or stops serving when nil; a listener already there is kept. A
    /// failed bind is logged (once per endpoint) and not thrown: the page is no reason to stop
    /// bonding, and the control loop tries again.
    func serve(at endpoint: Endpoint?) {
        if let server, server.endpoint == endpoint { return }
        if server == nil && endpoint == nil { return }
        if let old = server {
            old.stop()
            server = nil
            logger.notice("status page stopped", metadata: ["address": "\(old.endpoint)"])
        }
        guard let endpoint else { return }
        do {
            let started = try HTTPServer(bind: endpoint, routes: routes(), hosts: .addressesAnd([]), logger: logger)
            server = started
            failedEndpoint = nil
            logger.notice("status page", metadata: ["url": "http://\(started.endpoint)/"])
        } catch {
            if failedEndpoint != endpoint {
                logger.error(
                    "status page not served; trying again every few seconds",
                    metadata: ["web_listen": "\(endpoint)", "error": "\(error)"])
            }
            failedEndpoint = endpoint
        }
    }

    func stop() {
        server?.stop()
        server = nil
    }

    func routes() -> [String: HTTPRoute] {
        // The page may run scripts and styles of its own and talk to this listener, nothing else:
        // the browser itself enforces that it fetches nothing from anywhere.
        let page: [(String, String)] = [
            (
                "Content-Security-Policy",
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
                    + "img-src data:; frame-ancestors 'none'"
            ),
            ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"), ("Cache-Control", "no-cache"),
        ]
        let json: [(String, String)] = [("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-store")]
        let html = Array(StatusPage.html.utf8)
        let index: HTTPRoute = { HTTPAnswer(contentType: "text/html; charset=utf-8", body: html, headers: page) }
        return [
            "/": index,
            "/index.html": index,
            "/status.json": { [self] in
                HTTPAnswer(contentType: "application/json", body: lock.withLock { document }, headers: json)
            },
            "/history.json": { [self] in
                HTTPAnswer(contentType: "application/json", body: historyBytes(), headers: json)
            },
        ]
    }

    /// The rendered history, made again only when a sample was added since.
    private func historyBytes() -> [UInt8] {
        lock.withLock {
            if let r = rendered, r.generation == history.generation { return r.bytes }
            let bytes = Array(history.json(names: uplinkNames).utf8)
            rendered = (history.generation, bytes)
            return bytes
        }
    }
}
