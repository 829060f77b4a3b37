import BraidCore
import XCTest

@testable import BraidConfig

/// `metrics_listen`: an address and port, off by default, and never every address of the host by a slip.
final class MetricsListenTests: XCTestCase {
    let gateway = "config gateway 'main'\n\toption server '198.18.10.2'\n\toption psk_file '/etc/braid/psk'\n"
        + "\tlist lan_device 'br-lan'\n"
    let concentrator = "config concentrator 'main'\n\toption psk_file '/etc/braid/psk'\n"

    func problems(_ text: String) -> [String] {
        do {
            return BraidConfigReader(package: try UCIParser.parse(text, file: "braid.conf")).check().problems
                .map(\.description)
        } catch {
            return ["\(error)"]
        }
    }

    func testOffByDefault() throws {
        var reader = BraidConfigReader(package: try UCIParser.parse(gateway, file: "g"))
        XCTAssertNil(try reader.gateway().metricsListen)
        reader = BraidConfigReader(package: try UCIParser.parse(concentrator, file: "c"))
        XCTAssertNil(try reader.concentrator().metricsListen)
    }

    func testAddressesAndPorts() throws {
        var reader = BraidConfigReader(
            package: try UCIParser.parse(gateway + "\toption metrics_listen '198.18.0.1:9100'\n", file: "g"))
        XCTAssertEqual(try reader.gateway().metricsListen, Endpoint(address: IPAddress("198.18.0.1")!, port: 9100))
        reader = BraidConfigReader(
            package: try UCIParser.parse(concentrator + "\toption metrics_listen '[2001:db8::1]:9101'\n", file: "c"))
        XCTAssertEqual(
            try reader.concentrator().metricsListen, Endpoint(address: IPAddress("2001:db8::1")!, port: 9101))
        let bad = "must be ADDRESS:PORT, an IPv6 address in brackets ([2001:db8::1]:9100), port 1-65535"
        for text in ["198.18.0.1", "198.18.0.1:0", "198.18.0.1:70000", "2001:db8::1:9100", "[198.18.0.1]:9100",
            "[2001:db8::1:9100", "localhost:9100", ":9100"]
        {
            XCTAssertEqual(
                problems(concentrator + "\toption metrics_listen '\(text)'\n"),
                ["braid.conf:3: main.metrics_listen: \(bad) (\(text))"], text)
        }
    }

    /// Every address of a concentrator is on the internet: its subscribers' names and volumes are
    /// not served there unless the operator says so in as many words.
    func testUnspecifiedAddressNeedsTheOptIn() {
        let why =
            "an unspecified address serves the metrics on every address of the host; set metrics_any_address '1' "
            + "to mean it, or bind a management address"
        XCTAssertEqual(
            problems(concentrator + "\toption metrics_listen '0.0.0.0:9101'\n"),
            ["braid.conf:3: main.metrics_listen: \(why) (0.0.0.0:9101)"])
        XCTAssertEqual(
            problems(gateway + "\toption metrics_listen '[::]:9100'\n"),
            ["braid.conf:5: main.metrics_listen: \(why) ([::]:9100)"])
        XCTAssertEqual(
            problems(gateway + "\toption metrics_listen '[::]:9100'\n\toption metrics_any_address '1'\n"), [])
    }

    func testChangingItNeedsARestart() throws {
        var reader = BraidConfigReader(package: try UCIParser.parse(concentrator, file: "c"))
        let old = try reader.concentrator()
        var new = old
        new.metricsListen = Endpoint(address: IPAddress("198.18.0.1")!, port: 9101)
        XCTAssertEqual(
            ConcentratorConfigDiff(from: old, to: new).fixed.map(\.option), ["metrics_listen"])
    }
}
