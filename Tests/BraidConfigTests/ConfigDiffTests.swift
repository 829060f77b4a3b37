import BraidCore
import XCTest

@testable import BraidConfig

/// The diff a reload applies: computed from the running and the new configuration, touching only
/// what changed, and refusing options that need a restart with both values at the option's line.
final class ConfigDiffTests: XCTestCase {
    /// A gateway file: `extra` lines go into the gateway section, then the uplinks given.
    func gatewayText(_ extra: String = "", uplinks: [(String, String)] = [("dsl", "wan1"), ("lte", "wan2")]) -> String {
        var text = """
            config gateway 'main'
            	option server '198.18.10.2'
            	option psk_file '/etc/braid/psk'
            	list lan_device 'lan0'

            """
        text += extra
        for (name, device) in uplinks {
            text += "\nconfig uplink '\(name)'\n\toption device '\(device)'\n"
        }
        return text
    }

    func gateway(_ text: String) throws -> GatewayConfig {
        var reader = BraidConfigReader(package: try UCIParser.parse(text, file: "braid.conf"))
        return try reader.gateway()
    }

    func reload(_ running: GatewayConfig, _ text: String) throws -> (GatewayConfig, GatewayConfigDiff) {
        var reader = BraidConfigReader(package: try UCIParser.parse(text, file: "braid.conf"))
        let r = try reader.gatewayReload(running: running)
        return (r.config, r.diff)
    }

    func refusal(_ running: GatewayConfig, _ text: String) -> [String] {
        do {
            _ = try reload(running, text)
            return []
        } catch let e as ConfigErrors {
            return e.errors.map(\.description)
        } catch {
            return ["\(error)"]
        }
    }

    func testSameFileIsNoChange() throws {
        let running = try gateway(gatewayText())
        let (_, diff) = try reload(running, gatewayText())
        XCTAssertTrue(diff.isEmpty)
        XCTAssertEqual(diff.summary, "no changes")
        XCTAssertEqual(diff.fixed, [])
    }

    func testUplinkAddedKeepsTheOthersUntouched() throws {
        let running = try gateway(gatewayText())
        let (_, diff) = try reload(running, gatewayText(uplinks: [("dsl", "wan1"), ("lte", "wan2"), ("line2", "wan3")]))
        XCTAssertEqual(diff.uplinksAdded.map(\.name), ["line2"])
        XCTAssertEqual(diff.uplinksAdded.first?.device, "wan3")
        XCTAssertEqual(diff.uplinksRemoved, [])
        XCTAssertEqual(diff.uplinksChanged, [])
        XCTAssertNil(diff.uplinkOrder)
        XCTAssertEqual(diff.summary, "uplink line2 added (wan3, active)")
    }

    func testRemovingTheFirstUplinkMovesTheDefaultTablesOfTheRest() throws {
        let running = try gateway(gatewayText(uplinks: [("dsl", "wan1"), ("lte", "wan2"), ("line2", "wan3")]))
        XCTAssertEqual(running.uplinkTables, ["dsl": 4801, "lte": 4802, "line2": 4803])
        let (new, diff) = try reload(running, gatewayText(uplinks: [("lte", "wan2"), ("line2", "wan3")]))
        XCTAssertEqual(new.uplinkTables, ["lte": 4801, "line2": 4802])
        XCTAssertEqual(diff.uplinksRemoved.map(\.name), ["dsl"])
        XCTAssertEqual(diff.uplinksChanged.map(\.name), ["lte", "line2"])
        XCTAssertEqual(diff.uplinksChanged.map(\.tableChanged), [true, true])
        XCTAssertEqual(diff.uplinksChanged.map(\.deviceChanged), [false, false])
        XCTAssertEqual(
            diff.summary,
            "uplink dsl removed (wan1); uplink lte changed (table 4802 -> 4801); "
                + "uplink line2 changed (table 4803 -> 4802)")
    }

    func testAnExplicitTableStaysPut() throws {
        let text = { (uplinks: [(String, String)]) in
            self.gatewayText(uplinks: uplinks).replacingOccurrences(
                of: "'wan2'\n", with: "'wan2'\n\toption table '4900'\n")
        }
        let running = try gateway(text([("dsl", "wan1"), ("lte", "wan2")]))
        let (_, diff) = try reload(running, text([("lte", "wan2")]))
        XCTAssertEqual(diff.uplinksRemoved.map(\.name), ["dsl"])
        XCTAssertEqual(diff.uplinksChanged, [])
    }

    func testUplinkSettingsChanged() throws {
        let running = try gateway(gatewayText())
        let changed = gatewayText(uplinks: [("dsl", "wan1"), ("lte", "wan5")])
            + "\toption role 'backup'\n\toption gateway '198.18.5.1'\n"
        let (_, diff) = try reload(running, changed)
        XCTAssertEqual(diff.uplinksChanged.count, 1)
        let c = try XCTUnwrap(diff.uplinksChanged.first)
        XCTAssertEqual(c.name, "lte")
        XCTAssertTrue(c.deviceChanged)
        XCTAssertFalse(c.tableChanged)
        XCTAssertEqual(c.details, ["device wan2 -> wan5", "role active -> backup", "gateway learned -> 198.18.5.1"])
    }

    func testRenamedUplinkIsRemovedAndAdded() throws {
        let running = try gateway(gatewayText())
        let (_, diff) = try reload(running, gatewayText(uplinks: [("dsl", "wan1"), ("mobile", "wan2")]))
        XCTAssertEqual(diff.uplinksRemoved.map(\.name), ["lte"])
        XCTAssertEqual(diff.uplinksAdded.map(\.name), ["mobile"])
    }

    func testReorderedUplinks() throws {
        let running = try gateway(
            gatewayText().replacingOccurrences(of: "'wan1'\n", with: "'wan1'\n\toption table '10'\n")
                .replacingOccurrences(of: "'wan2'\n", with: "'wan2'\n\toption table '11'\n"))
        let swapped = gatewayText(uplinks: [("lte", "wan2"), ("dsl", "wan1")])
            .replacingOccurrences(of: "'wan1'\n", with: "'wan1'\n\toption table '10'\n")
            .replacingOccurrences(of: "'wan2'\n", with: "'wan2'\n\toption table '11'\n")
        let (_, diff) = try reload(running, swapped)
        XCTAssertEqual(diff.uplinkOrder, ["lte", "dsl"])
        XCTAssertEqual(diff.uplinksChanged, [])
        XCTAssertEqual(diff.summary, "uplink order lte, dsl")
    }

    func testLANDevicesAndTimers() throws {
        let running = try gateway(gatewayText())
        let text = gatewayText().replacingOccurrences(of: "list lan_device 'lan0'", with: "list lan_device 'lan1'")
            .replacingOccurrences(
                of: "\n\nconfig uplink 'dsl'",
                with: "\n\toption probe_interval '100'\n\toption max_subflows '2'\n\nconfig uplink 'dsl'")
        let (new, diff) = try reload(running, text)
        XCTAssertEqual(new.probeInterval, 100)
        XCTAssertEqual(diff.lanDevicesAdded, ["lan1"])
        XCTAssertEqual(diff.lanDevicesRemoved, ["lan0"])
        XCTAssertEqual(diff.probeTimers?.old.interval, 200)
        XCTAssertEqual(diff.probeTimers?.new.interval, 100)
        XCTAssertEqual(diff.probeTimers?.new.downAfter, 1000)
        XCTAssertEqual(diff.maxSubflows?.new, 2)
        XCTAssertEqual(
            diff.summary,
            "lan_device lan1 added; lan_device lan0 removed; probe_interval 200 -> 100; max_subflows 8 -> 2")
    }

    func testFixedOptionsAreRefusedWithBothValuesAtTheirLine() throws {
        let running = try gateway(gatewayText())
        let text = gatewayText("\toption tproxy_port '4901'\n\toption fwmark '0x10'\n")
            + "\toption role 'backup'\n"
        XCTAssertEqual(
            refusal(running, text),
            [
                "braid.conf:5: main.tproxy_port: cannot change while running, restart to apply (4801 -> 4901)",
                "braid.conf:6: main.fwmark: cannot change while running, restart to apply (0x6272 -> 0x10)",
            ])
    }

    func testServerListIsReloadedLive() throws {
        let running = try gateway(gatewayText())
        let (new, diff) = try reload(
            running,
            gatewayText().replacingOccurrences(of: "option server '198.18.10.2'", with: "option server '198.18.10.3'"))
        XCTAssertEqual(new.servers, [.address(IPAddress("198.18.10.3")!)])
        XCTAssertEqual(diff.fixed, [])
        XCTAssertEqual(diff.summary, "server 198.18.10.2 -> 198.18.10.3")
    }

    func testFixedOptionBackToItsDefaultPointsAtTheSection() throws {
        let running = try gateway(gatewayText("\toption fwmark '0x10'\n\toption status_socket '/tmp/gw.sock'\n"))
        XCTAssertEqual(
            refusal(running, gatewayText()),
            [
                "braid.conf:1: main.fwmark: cannot change while running, restart to apply (0x10 -> 0x6272)",
                "braid.conf:1: main.status_socket: cannot change while running, restart to apply "
                    + "(/tmp/gw.sock -> /run/braid/gateway.sock)",
            ])
    }

    func testQUICAndHoldDownAreReloaded() throws {
        let running = try gateway(gatewayText())
        XCTAssertEqual(running.quic, .tcp)
        XCTAssertEqual(running.holddown, 10)
        let (new, diff) = try reload(running, gatewayText("\toption quic 'pass'\n\toption holddown '2.5'\n"))
        XCTAssertEqual(new.quic, .pass)
        XCTAssertEqual(diff.fixed, [])
        XCTAssertEqual(diff.summary, "holddown 10 -> 2.5; quic tcp -> pass")
        XCTAssertEqual(
            refusal(running, gatewayText("\toption quic 'udp'\n\toption holddown '-1'\n")),
            [
                "braid.conf:5: main.quic: must be tcp or pass (udp)",
                "braid.conf:6: main.holddown: must be seconds from 0 to 3600 (-1)",
            ])
    }

    /// `congestion_control` is cubic unless set; `system` asks for nothing; a reload that changes
    /// it is refused (the listener and connections already open would keep theirs); a name
    /// outside the list is refused with the line, option and value.
    func testCongestionControlDefaultsToCubicAndTakesARestart() throws {
        let running = try gateway(gatewayText())
        XCTAssertEqual(running.congestionControl, .cubic)
        XCTAssertEqual(running.congestionControl.kernelName, "cubic")
        XCTAssertNil(try gateway(gatewayText("\toption congestion_control 'system'\n")).congestionControl.kernelName)
        XCTAssertEqual(
            refusal(running, gatewayText("\toption congestion_control 'system'\n")),
            ["braid.conf:5: main.congestion_control: cannot change while running, restart to apply (cubic -> system)"])
        XCTAssertEqual(
            refusal(running, gatewayText("\toption congestion_control 'vegas'\n")),
            ["braid.conf:5: main.congestion_control: must be cubic, bbr, reno or system (vegas)"])
        let concentrator = try concentrator([], "\toption congestion_control 'bbr'\n")
        XCTAssertEqual(concentrator.congestionControl, .bbr)
        XCTAssertEqual(
            ConcentratorConfigDiff(from: try self.concentrator([]), to: concentrator).fixed.map(\.option),
            ["congestion_control"])
    }

    func testAnInvalidFileIsRefusedWithTheReadersMessages() throws {
        let running = try gateway(gatewayText())
        XCTAssertEqual(
            refusal(running, gatewayText("\toption probe_interval 'fast'\n")),
            ["braid.conf:5: main.probe_interval: must be milliseconds from 20 to 60000 (fast)"])
    }

    // MARK: concentrator

    func concentrator(_ deny: [String], _ extra: String = "") throws -> ConcentratorConfig {
        var reader = BraidConfigReader(package: try UCIParser.parse(concentratorText(deny, extra), file: "c.conf"))
        return try reader.concentrator()
    }

    func concentratorText(_ deny: [String], _ extra: String = "") -> String {
        "config concentrator 'main'\n\toption psk_file '/k'\n" + deny.map { "\tlist deny_dest '\($0)'\n" }.joined()
            + extra
    }

    func testDenyListChanges() throws {
        let running = try concentrator(["10.0.0.0/8", "198.18.21.2/32"])
        var reader = BraidConfigReader(
            package: try UCIParser.parse(concentratorText(["10.0.0.0/8", "198.18.20.0/24"]), file: "c.conf"))
        let (new, diff) = try reader.concentratorReload(running: running)
        XCTAssertEqual(new.denyDestinations.map(\.description), ["10.0.0.0/8", "198.18.20.0/24"])
        XCTAssertEqual(diff.denyAdded.map(\.description), ["198.18.20.0/24"])
        XCTAssertEqual(diff.denyRemoved.map(\.description), ["198.18.21.2/32"])
        XCTAssertEqual(diff.summary, "deny_dest 198.18.20.0/24 added; deny_dest 198.18.21.2/32 removed")
        XCTAssertEqual(new.statusSocket, "/run/braid/concentrator.sock")
    }

    func testDestinationPolicyChanges() throws {
        let running = try concentrator(["10.0.0.0/8"])
        var reader = BraidConfigReader(
            package: try UCIParser.parse(
                concentratorText(
                    ["10.0.0.0/8"], "\tlist allow_dest '::ffff:172.16.5.0/120'\n\tlist deny_port '8000-8080'\n"
                        + "\tlist allow_port '80'\n"), file: "c.conf"))
        let (new, diff) = try reader.concentratorReload(running: running)
        XCTAssertEqual(new.allowDestinations.map(\.description), ["172.16.5.0/24"])
        XCTAssertTrue(diff.destinationPolicyChanged)
        XCTAssertEqual(
            diff.summary, "allow_dest 172.16.5.0/24 added; deny_port 8000-8080 added; allow_port 80 added")
        var again = BraidConfigReader(package: try UCIParser.parse(concentratorText(["10.0.0.0/8"]), file: "c.conf"))
        let (_, back) = try again.concentratorReload(running: new)
        XCTAssertEqual(
            back.summary, "allow_dest 172.16.5.0/24 removed; deny_port 8000-8080 removed; allow_port 80 removed")
        XCTAssertFalse(ConcentratorConfigDiff(from: new, to: new).destinationPolicyChanged)
    }

    func testConcentratorFixedOptions() throws {
        let running = try concentrator([])
        var reader = BraidConfigReader(
            package: try UCIParser.parse(concentratorText([], "\toption port '4900'\n"), file: "c.conf"))
        XCTAssertThrowsError(try reader.concentratorReload(running: running)) { error in
            XCTAssertEqual(
                (error as? ConfigErrors)?.errors.map(\.description),
                ["c.conf:3: main.port: cannot change while running, restart to apply (4800 -> 4900)"])
        }
    }

    func testSubscriberChanges() throws {
        let classes = "config class 'standard'\nconfig class 'gold'\n"
        let running = try concentrator([], "config subscriber 'cpe_1'\n\toption class 'standard'\n" + classes)
        let text = concentratorText([], "config subscriber 'cpe_1'\n\toption class 'gold'\n" + classes
            + "config subscriber 'cpe_2'\n\toption class 'gold'\n")
        var reader = BraidConfigReader(package: try UCIParser.parse(text, file: "c.conf"))
        let (_, diff) = try reader.concentratorReload(running: running)
        XCTAssertEqual(diff.subscribersChanged, ["cpe_1", "cpe_2"])
        XCTAssertEqual(diff.classesChanged, [])
        XCTAssertEqual(diff.denyAdded, [])
    }

    // MARK: the answer on the socket

    func testReloadAnswerRoundTrip() {
        let ok = ReloadAnswer.reloaded(summary: "uplink line2 added (wan3, active)")
        XCTAssertEqual(ok.text, "reloaded: uplink line2 added (wan3, active)")
        XCTAssertEqual(ReloadAnswer(text: ok.text + "\n"), ok)
        let refused = ReloadAnswer.refused(["f:2: main.server: x (a)", "f:3: main.port: y (b)"])
        XCTAssertEqual(ReloadAnswer(text: refused.text + "\n"), refused)
        XCTAssertEqual(ReloadAnswer(text: "{}"), .refused(["{}"]))
    }
}
