import BraidCore
import XCTest

@testable import BraidConfig

/// `option web_listen`: the forms an operator writes, what `braid check` says about the others,
/// which LAN address `lan` picks, and a reload that moves the page.
final class WebListenTests: XCTestCase {
    let gateway = """
        config gateway 'main'
        \toption server '198.18.10.2'
        \toption psk_file '/etc/braid/psk'
        \tlist lan_device 'br-lan'

        """

    func config(_ extra: String) throws -> GatewayConfig {
        var reader = BraidConfigReader(package: try UCIParser.parse(gateway + extra, file: "braid.conf"))
        return try reader.gateway()
    }

    func problems(_ extra: String) -> [String] {
        do {
            let reader = BraidConfigReader(package: try UCIParser.parse(gateway + extra, file: "braid.conf"))
            return reader.check(role: .gateway).problems.map(\.description)
        } catch {
            return ["\(error)"]
        }
    }

    func testForms() {
        let v4 = IPAddress("198.18.0.1")!
        let v6 = IPAddress("2001:db8::1")!
        let cases: [(String, ListenerSetting)] = [
            ("off", .off),
            ("lan", .lan(port: 80)),
            ("lan:8080", .lan(port: 8080)),
            ("198.18.0.1", .endpoint(Endpoint(address: v4, port: 80))),
            ("198.18.0.1:8080", .endpoint(Endpoint(address: v4, port: 8080))),
            ("2001:db8::1", .endpoint(Endpoint(address: v6, port: 80))),
            ("[2001:db8::1]", .endpoint(Endpoint(address: v6, port: 80))),
            ("[2001:db8::1]:8080", .endpoint(Endpoint(address: v6, port: 8080))),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(ListenerSetting(text, defaultPort: 80), expected, text)
        }
        for bad in ["", "on", "lan:", "lan:0", "lan:65536", "lan:80x", "198.18.0.1:", "198.18.0.1:0", "[198.18.0.1]:80",
            "[2001:db8::1]80", "[2001:db8::1:80", "lan:+80", "br-lan", "198.18.0.1:80:80"]
        {
            XCTAssertNil(ListenerSetting(bad, defaultPort: 80), bad)
        }
    }

    func testDefaultIsTheLANAddressOnPort80() throws {
        XCTAssertEqual(try config("").webListen, .lan(port: 80))
        XCTAssertEqual(try config("\toption web_listen 'off'\n").webListen, .off)
    }

    func testCheckNamesOptionAndValue() {
        XCTAssertEqual(
            problems("\toption web_listen 'lan:http'\n"),
            [
                "braid.conf:5: main.web_listen: must be off, lan, lan:PORT, ADDRESS, ADDRESS:PORT or [IPv6]:PORT "
                    + "(lan:http)"
            ])
        XCTAssertEqual(
            problems("\toption web_listen 'lan:4801'\n"),
            ["braid.conf:5: main.web_listen: must not use tproxy_port (lan:4801)"])
    }

    /// `lan` takes the first IPv4 address of the LAN devices, else the first IPv6 address a
    /// browser can type (not link-local); nothing when there is neither.
    func testLANAddressChoice() {
        let lan = ListenerSetting.lan(port: 80)
        let ll = IPAddress("fe80::1")!
        let g6 = IPAddress("2001:db8::1")!
        let v4 = IPAddress("198.18.0.1")!
        XCTAssertEqual(lan.resolve(lanAddresses: [ll, g6, v4]), Endpoint(address: v4, port: 80))
        XCTAssertEqual(lan.resolve(lanAddresses: [ll, g6]), Endpoint(address: g6, port: 80))
        XCTAssertNil(lan.resolve(lanAddresses: [ll]))
        XCTAssertNil(lan.resolve(lanAddresses: []))
        XCTAssertNil(ListenerSetting.off.resolve(lanAddresses: [v4]))
        let fixed = Endpoint(address: g6, port: 8080)
        XCTAssertEqual(ListenerSetting.endpoint(fixed).resolve(lanAddresses: [v4]), fixed)
    }

    /// The page moves on a reload; nothing else is touched and nothing needs a restart.
    func testReloadMovesThePage() throws {
        let running = try config("")
        var reader = BraidConfigReader(
            package: try UCIParser.parse(gateway + "\toption web_listen 'lan:8080'\n", file: "braid.conf"))
        let (new, diff) = try reader.gatewayReload(running: running)
        XCTAssertEqual(new.webListen, .lan(port: 8080))
        XCTAssertTrue(diff.fixed.isEmpty)
        XCTAssertEqual(diff.summary, "web_listen lan:80 -> lan:8080")
    }
}
