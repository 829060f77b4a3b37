import BraidCore
import XCTest

@testable import BraidConfig

/// `role overflow`, an uplink's `share` and a class's `uplink_share`: read, checked, diffed.
final class SteeringConfigTests: XCTestCase {
    let gatewayHead =
        "config gateway 'g'\n\toption server '198.18.10.2'\n\toption psk_file '/k'\n\tlist lan_device 'lan'\n"

    func gateway(_ uplinks: String) throws -> GatewayConfig {
        var reader = BraidConfigReader(package: try UCIParser.parse(gatewayHead + uplinks, file: "braid.conf"))
        return try reader.gateway()
    }

    func errors(_ text: String, gateway: Bool) -> [String] {
        do {
            var reader = BraidConfigReader(package: try UCIParser.parse(text, file: "braid.conf"))
            if gateway { _ = try reader.gateway() } else { _ = try reader.concentrator() }
            return []
        } catch let e as ConfigErrors {
            return e.errors.map(\.description)
        } catch {
            return ["\(error)"]
        }
    }

    func testOverflowRoleAndShare() throws {
        let c = try gateway(
            "config uplink 'dsl'\n\toption device 'wan1'\n\toption share '20'\n"
                + "config uplink 'lte'\n\toption device 'wan2'\n\toption role 'overflow'\n"
                + "config uplink 'x'\n\toption device 'wan3'\n\toption share '100'\n")
        XCTAssertEqual(c.uplinks.map(\.role), [.active, .overflow, .active])
        // 100, like no option at all, is no cap.
        XCTAssertEqual(c.uplinks.map(\.share), [20, nil, nil])
    }

    func testShareOutOfRangeNamesTheValue() {
        XCTAssertEqual(
            errors(gatewayHead + "config uplink 'dsl'\n\toption device 'wan1'\n\toption share '120'\n", gateway: true),
            ["braid.conf:7: dsl.share: must be a whole number from 0 to 100 (120)"])
    }

    func testAShareChangeIsAnUplinkChange() throws {
        let old = try gateway("config uplink 'lte'\n\toption device 'wan2'\n")
        let new = try gateway("config uplink 'lte'\n\toption device 'wan2'\n\toption share '20'\n")
        let diff = GatewayConfigDiff(from: old, to: new)
        XCTAssertEqual(diff.uplinksChanged.map(\.details), [["share 100 -> 20"]])
        XCTAssertFalse(diff.uplinksChanged[0].deviceChanged)
    }

    let concentratorHead = "config concentrator 'main'\n\toption psk_file '/k'\n"

    func testClassUplinkShares() throws {
        let text = concentratorHead
            + "config class 'office'\n\tlist uplink_share 'lte=20'\n\tlist uplink_share 'dsl_2=0'\n"
        var reader = BraidConfigReader(package: try UCIParser.parse(text, file: "c"))
        XCTAssertEqual(
            try reader.concentrator().classes.first?.uplinkShares,
            [UplinkShare(uplink: "lte", percent: 20), UplinkShare(uplink: "dsl_2", percent: 0)])
    }

    func testClassUplinkShareErrors() {
        XCTAssertEqual(
            errors(concentratorHead + "config class 'office'\n\tlist uplink_share 'lte:20'\n", gateway: false),
            [
                "braid.conf:4: office.uplink_share: must be UPLINK=N: an uplink's section name (letters, digits and "
                    + "'_', at most 64 bytes) and a percentage from 0 to 100 (lte:20)"
            ])
        XCTAssertEqual(
            errors(
                concentratorHead + "config class 'office'\n\tlist uplink_share 'lte=20'\n"
                    + "\tlist uplink_share 'lte=30'\n",
                gateway: false),
            ["braid.conf:4: office.uplink_share: names uplink lte twice (lte=30)"])
        let nine = (1...9).map { "\tlist uplink_share 'u\($0)=10'\n" }.joined()
        XCTAssertEqual(
            errors(concentratorHead + "config class 'office'\n" + nine, gateway: false),
            ["braid.conf:4: office.uplink_share: at most 8 uplink shares per class (9)"])
    }
}
