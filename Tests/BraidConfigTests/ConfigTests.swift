import BraidCore
import XCTest

@testable import BraidConfig

final class ConfigTests: XCTestCase {
    let gateway = """
        package braid

        # the CPE
        config gateway 'main'
        	option server '198.18.10.2'
        	option port 4800
        	option psk_file "/etc/braid/psk"
        	list lan_device 'br-lan'
        	list lan_device 'lan2'

        config uplink 'dsl'
        	option device 'pppoe-wan'
        	option role 'active'

        config uplink
        	option device 'wwan0'
        	option role backup
        	option gateway '198.18.5.1'
        """

    func testGatewayConfig() throws {
        var reader = BraidConfigReader(package: try UCIParser.parse(gateway, file: "braid"))
        let c = try reader.gateway()
        XCTAssertEqual(c.server, .address(IPAddress("198.18.10.2")!))
        XCTAssertEqual(c.port, 4800)
        XCTAssertEqual(c.pskFile, "/etc/braid/psk")
        XCTAssertEqual(c.lanDevices, ["br-lan", "lan2"])
        XCTAssertEqual(c.tproxyPort, 4801)
        XCTAssertFalse(c.fastOpen)
        XCTAssertEqual(c.uplinks.map(\.name), ["dsl", "@uplink[1]"])
        XCTAssertEqual(c.uplinks.map(\.role), [.active, .backup])
        XCTAssertEqual(c.uplinks[1].gateway, IPAddress("198.18.5.1"))
        XCTAssertNil(c.uplinks[0].gateway)
    }

    /// `server` may be a name (resolved by the daemon); an unset server_name leaves MACs bound to
    /// the address dialled.
    func testGatewayServerByName() throws {
        let text = gateway.replacingOccurrences(of: "'198.18.10.2'", with: "'concentrator.example.net'")
        var reader = BraidConfigReader(package: try UCIParser.parse(text, file: "braid"))
        let c = try reader.gateway()
        XCTAssertEqual(c.server, .name("concentrator.example.net"))
        XCTAssertEqual(c.serverName, "concentrator.example.net")
        XCTAssertNil(c.macIdentity)
        for bad in ["198.18.10", "-x.example", "a..b", "x_y.example", "2001:db8::1::2"] {
            XCTAssertThrowsError(try ConfigSchema.parse(bad, as: .hostOrAddress), bad)
        }
        for good in ["198.18.10.2", "2001:db8:10::2", "conc", "c-1.example.net", "4.example.io"] {
            XCTAssertNoThrow(try ConfigSchema.parse(good, as: .hostOrAddress), good)
        }
    }

    func testConcentratorAnnounce() throws {
        let text = "config concentrator 'main'\n\toption psk_file '/k'\n\tlist announce '198.18.10.2'\n"
            + "\tlist announce '2001:db8:10::2'\n"
        var reader = BraidConfigReader(package: try UCIParser.parse(text, file: "c"))
        XCTAssertEqual(try reader.concentrator().announce, [IPAddress("198.18.10.2")!, IPAddress("2001:db8:10::2")!])
        XCTAssertEqual(
            errors("config concentrator 'main'\n\toption psk_file '/k'\n\tlist announce 'fe80::1'\n", "concentrator"),
            ["braid.conf:3: main.announce: is not an address a gateway can dial (fe80::1)"])
    }

    func testConcentratorConfig() throws {
        let text = """
            config concentrator 'main'
            	option port '4900'
            	option psk_file '/k'
            	list deny_dest '10.0.0.0/8'
            	list deny_dest '2001:db8:ff::/48'
            """
        var reader = BraidConfigReader(package: try UCIParser.parse(text, file: "c"))
        let c = try reader.concentrator()
        XCTAssertEqual(c.listen, IPAddress("::"))
        XCTAssertEqual(c.port, 4900)
        XCTAssertEqual(c.denyDestinations.map(\.description), ["10.0.0.0/8", "2001:db8:ff::/48"])
        XCTAssertEqual(c.handshakeTimeout, 2)
        XCTAssertEqual(c.maxPending, 16384)
        XCTAssertEqual(c.maxPendingPerSource, 1024)
    }

    func testPendingHandshakeLimits() throws {
        let text = """
            config concentrator 'main'
            	option psk_file '/k'
            	option handshake_timeout '0.5'
            	option max_pending '100'
            	option max_pending_per_source '3'
            """
        var reader = BraidConfigReader(package: try UCIParser.parse(text, file: "c"))
        let c = try reader.concentrator()
        XCTAssertEqual(c.handshakeTimeout, 0.5)
        XCTAssertEqual(c.maxPending, 100)
        XCTAssertEqual(c.maxPendingPerSource, 3)
        XCTAssertEqual(
            errors(
                "config concentrator 'main'\n\toption psk_file '/k'\n\toption max_pending_per_source '0'\n",
                "concentrator"),
            ["braid.conf:3: main.max_pending_per_source: must be a whole number from 1 to 1000000 (0)"])
    }

    func testQuotingAndEscaping() throws {
        let p = try UCIParser.parse(
            "config a 'x'\n\toption b 'it'\\''s'\n\toption c \"q\\\"d\"\n\toption d plain # comment\n", file: "f")
        XCTAssertEqual(p.sections[0].option("b")?.values, ["it's"])
        XCTAssertEqual(p.sections[0].option("c")?.values, ["q\"d"])
        XCTAssertEqual(p.sections[0].option("d")?.values, ["plain"])
    }

    func errors(_ text: String, _ role: String) -> [String] {
        do {
            var reader = BraidConfigReader(package: try UCIParser.parse(text, file: "braid.conf"))
            if role == "gateway" { _ = try reader.gateway() } else { _ = try reader.concentrator() }
            return []
        } catch let e as ConfigErrors {
            return e.errors.map(\.description)
        } catch {
            return ["\(error)"]
        }
    }

    func testErrorsNameFileLineOptionAndValue() {
        XCTAssertEqual(
            errors("config concentrator 'main'\n\toption port '70000'\n\toption psk_file '/k'\n", "concentrator"),
            ["braid.conf:2: main.port: must be a port number 1-65535 (70000)"])
        XCTAssertEqual(
            errors("config concentrator 'main'\n\toption psk_file '/k'\n\tlist deny_dest '10.0.0.0/33'\n", "concentrator"),
            ["braid.conf:3: main.deny_dest: not an address or CIDR prefix (10.0.0.0/33)"])
        XCTAssertEqual(
            errors("config concentrator 'main'\n\toption psk_file '/k'\n\toption colour 'blue'\n", "concentrator"),
            ["braid.conf:3: main.colour: unknown option (blue)"])
        let gw = errors(
            "config gateway 'g'\n\toption server '198.18.10'\n\toption psk_file '/k'\n\tlist lan_device 'lan'\n"
                + "config uplink\n\toption device 'wan'\n\toption role 'primary'\n", "gateway")
        XCTAssertEqual(
            gw,
            [
                "braid.conf:2: g.server: not an IP address or a DNS name (198.18.10)",
                "braid.conf:7: @uplink[0].role: must be active, backup, off or overflow (primary)",
            ])
        XCTAssertEqual(errors("config gateway 'g'\n\toption 'x\n", "gateway"), ["braid.conf:2: unterminated quote"])
        XCTAssertEqual(errors("option a b\n", "gateway"), ["braid.conf:1: 'option' outside of a 'config' section"])
        XCTAssertEqual(errors("", "gateway"), ["braid.conf:0: no 'config gateway' section"])
    }

    func testPrefixes() {
        XCTAssertTrue(IPPrefix("198.18.0.0/15")!.contains(IPAddress("198.19.255.1")!))
        XCTAssertFalse(IPPrefix("198.18.0.0/15")!.contains(IPAddress("198.20.0.1")!))
        XCTAssertTrue(IPPrefix("fe80::/10")!.contains(IPAddress("febf::1")!))
        XCTAssertFalse(IPPrefix("fe80::/10")!.contains(IPAddress("fec0::1")!))
        XCTAssertFalse(IPPrefix("0.0.0.0/0")!.contains(IPAddress("::1")!))
        XCTAssertNil(IPPrefix("1.2.3.4/+3"))
        XCTAssertEqual(IPAddress(mappedIPv6Bytes: IPAddress("198.18.0.1")!.mappedIPv6Bytes), IPAddress("198.18.0.1"))
    }
}
