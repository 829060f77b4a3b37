import XCTest

@testable import BraidMetrics
@testable import BraidStatus

final class MetricsExporterTests: XCTestCase {
    func text(_ m: MetricsExporter, _ record: (MetricsExporter) -> Void) -> String {
        String(decoding: m.scrape(record), as: UTF8.self)
    }

    func testCounterFollowsItsTotalAndNeverGoesBack() {
        let m = MetricsExporter()
        func scrape(_ total: UInt64) -> String { text(m) { $0.count("braid_x_total", [("a", "1")], total: total) } }
        XCTAssertTrue(scrape(100).contains(#"braid_x_total{a="1"} 100"#))
        XCTAssertTrue(scrape(150).contains(#"braid_x_total{a="1"} 150"#))
        // The source started again from zero (a device created again): its new total is added.
        XCTAssertTrue(scrape(30).contains(#"braid_x_total{a="1"} 180"#))
        // A series the document no longer has keeps its value.
        XCTAssertTrue(text(m) { _ in }.contains(#"braid_x_total{a="1"} 180"#))
    }

    func testGaugeLeavesWithItsSeries() {
        let m = MetricsExporter()
        XCTAssertTrue(text(m) { $0.gauge("braid_up", [("uplink", "dsl")], 1) }.contains(#"braid_up{uplink="dsl"} 1.0"#))
        XCTAssertFalse(text(m) { $0.gauge("braid_up", [("uplink", "lte")], 0) }.contains("dsl"))
    }

    func testGatewayMetricNames() {
        let doc = GatewayStatus(
            concentrator: "198.18.10.2:4800", sessions: SessionCount(active: 2, total: 7),
            control: GatewayControlStatus(state: "up", key: 1),
            uplinks: [
                UplinkStatus(
                    name: "dsl", device: "eth1", role: "active", state: "up", since: 0, carrier: true, addresses: [],
                    rttMs: 25, loss: 0.5, subflows: 1, mptcp: "ok", txBytes: 11, rxBytes: 22)
            ], bytes: ByteCount(up: 3, down: 4))
        let out = text(MetricsExporter()) { GatewayMetrics.record(doc, into: $0) }
        for line in [
            #"braid_uplink_up{uplink="dsl"} 1.0"#, #"braid_uplink_rtt_seconds{uplink="dsl"} 0.025"#,
            #"braid_uplink_loss_ratio{uplink="dsl"} 0.5"#, #"braid_uplink_bytes_total{uplink="dsl",direction="rx"} 22"#,
            #"braid_uplink_bytes_total{uplink="dsl",direction="tx"} 11"#, "braid_sessions_open 2.0",
            "braid_sessions_total 7", #"braid_session_bytes_total{direction="up"} 3"#,
        ] {
            XCTAssertTrue(out.contains(line + "\n"), "\(line) not in:\n\(out)")
        }
    }

    func testConcentratorMetricNames() {
        let doc = ConcentratorStatus(
            listen: "[::]:4800", denyDest: [], allowDest: [], denyPort: [], allowPort: [], time: 0,
            sessions: SessionCount(active: 1, total: 2), bytes: ByteCount(up: 5, down: 6), controlChannels: 1,
            subscribers: [
                SubscriberStatus(
                    name: "cpe \"1\"", serviceClass: "standard", config: "enabled",
                    control: SubscriberControlStatus(state: "up", channels: 1), sessions: 1,
                    bytes: ByteCount(up: 5, down: 6), rateBps: ByteRate(up: 0, down: 0))
            ],
            refusals: [RefusalCount(listener: "data", reason: "bad_mac", count: 3)])
        let out = text(MetricsExporter()) { ConcentratorMetrics.record(doc, into: $0) }
        for line in [
            #"braid_subscriber_bytes_total{subscriber="cpe \"1\"",direction="up"} 5"#,
            #"braid_subscriber_bytes_total{subscriber="cpe \"1\"",direction="down"} 6"#,
            #"braid_subscriber_sessions_open{subscriber="cpe \"1\""} 1.0"#, "braid_control_channels_open 1.0",
            #"braid_refusals_total{listener="data",reason="bad_mac"} 3"#, "braid_sessions_open 1.0",
        ] {
            XCTAssertTrue(out.contains(line + "\n"), "\(line) not in:\n\(out)")
        }
    }
}
