import BraidCore
import XCTest

@testable import BraidConfig

/// `list server`: several concentrators in order of preference, and what `braid check` refuses.
final class ServerListTests: XCTestCase {
    let tls = """
        \toption ca '/etc/braid/ca.pem'
        \toption cert '/etc/braid/gw.pem'
        \toption key '/etc/braid/gw.key'
        \tlist lan_device 'br-lan'

        """

    func read(_ text: String) -> (GatewayConfig?, [String]) {
        do {
            let reader = BraidConfigReader(package: try UCIParser.parse(text, file: "braid.conf"))
            let (config, errors) = reader.readGateway()
            return (config, errors.map(\.description))
        } catch {
            return (nil, ["\(error)"])
        }
    }

    func testListInOrderOfPreference() {
        let (config, errors) = read(
            "config gateway 'main'\n\tlist server 'conc2.example.net'\n\tlist server '198.18.10.2'\n"
                + "\toption server_holddown '12.5'\n" + tls)
        XCTAssertEqual(errors, [])
        XCTAssertEqual(config?.servers, [.name("conc2.example.net"), .address(IPAddress("198.18.10.2")!)])
        XCTAssertEqual(config?.server, .name("conc2.example.net"))
        XCTAssertEqual(config?.serverHolddown, 12.5)
    }

    func testOptionServerIsOneAndTheHoldDownHasADefault() {
        let (config, errors) = read("config gateway 'main'\n\toption server '198.18.10.2'\n" + tls)
        XCTAssertEqual(errors, [])
        XCTAssertEqual(config?.servers, [.address(IPAddress("198.18.10.2")!)])
        XCTAssertEqual(config?.serverHolddown, 30)
    }

    func testOptionAndListTogetherAreRefusedNamingBoth() {
        let (_, errors) = read(
            "config gateway 'main'\n\toption server '198.18.10.2'\n\tlist server '198.18.11.2'\n" + tls)
        XCTAssertEqual(
            errors,
            [
                "braid.conf:2: main.server: option server and list server are both set; use list server alone for "
                    + "several (198.18.10.2 198.18.11.2)"
            ])
    }

    func testSeveralNeedTLSAndNoServerNameAndNoRepeats() {
        let (_, errors) = read(
            "config gateway 'main'\n\tlist server 'a.example.net'\n\tlist server 'a.example.net'\n"
                + "\tlist server 'b.example.net'\n\toption psk_file '/etc/braid/psk'\n"
                + "\toption server_name 'x.example.net'\n"
                + "\tlist lan_device 'br-lan'\n")
        XCTAssertEqual(
            errors,
            [
                "braid.conf:2: main.server: listed twice (a.example.net)",
                "braid.conf:2: main.server: several concentrators need the control channel (ca, cert and key) "
                    + "(a.example.net a.example.net b.example.net)",
                "braid.conf:6: main.server_name: names one concentrator; with list server each certificate must "
                    + "carry its own entry (x.example.net)",
            ])
    }
}
