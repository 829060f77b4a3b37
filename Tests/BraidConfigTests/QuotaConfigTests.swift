import XCTest

@testable import BraidConfig

/// An uplink's data cap as an installer writes it: sizes with 1000-based suffixes, the period
/// options and their defaults, and what `braid check` says about the values that cannot work.
final class QuotaConfigTests: XCTestCase {
    let gateway = """
        config gateway 'main'
        \toption server '198.18.10.2'
        \toption psk_file '/etc/braid/psk'
        \tlist lan_device 'br-lan'

        config uplink 'lte'
        \toption device 'wwan0'

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

    func testSizesAre1000Based() throws {
        let cases: [(String, UInt64)] = [
            ("1500", 1500), ("10k", 10_000), ("250M", 250_000_000), ("20G", 20_000_000_000),
            ("2T", 2_000_000_000_000),
        ]
        for (text, bytes) in cases {
            XCTAssertEqual(try ConfigSchema.parse(text, as: .bytes), .number(bytes), text)
        }
        for bad in ["", "G", "1.5G", "20g", "20GB", "-1", "20 G", "99999999999T"] {
            XCTAssertThrowsError(try ConfigSchema.parse(bad, as: .bytes), bad)
        }
    }

    func testDefaultsAreAMonthlyCapFromTheFirstTurningBackup() throws {
        XCTAssertNil(try config("").uplinks[0].quota)
        XCTAssertEqual(
            try config("\toption quota '20G'\n").uplinks[0].quota,
            UplinkQuota(bytes: 20_000_000_000, period: .month, resetDay: 1, action: .backup))
        XCTAssertEqual(
            try config("\toption quota '1G'\n\toption quota_period 'week'\n\toption quota_reset_day '7'\n"
                + "\toption quota_action 'off'\n").uplinks[0].quota,
            UplinkQuota(bytes: 1_000_000_000, period: .week, resetDay: 7, action: .off))
        XCTAssertEqual(try config("").stateDir, "/etc/braid/state")
    }

    func testCheckNamesSectionOptionAndValue() {
        XCTAssertEqual(
            problems("\toption quota '20 GB'\n"),
            ["braid.conf:8: lte.quota: must be bytes, a whole number with an optional k, M, G or T suffix "
                + "(1000-based) (20 GB)"])
        XCTAssertEqual(
            problems("\toption quota '0'\n"),
            ["braid.conf:8: lte.quota: must be more than 0 bytes (leave quota out for no cap) (0)"])
        XCTAssertEqual(
            problems("\toption quota '1G'\n\toption quota_period 'year'\n"),
            ["braid.conf:9: lte.quota_period: must be day, week or month (year)"])
        XCTAssertEqual(
            problems("\toption quota '1G'\n\toption quota_reset_day '32'\n"),
            ["braid.conf:9: lte.quota_reset_day: must be a whole number from 1 to 31 (32)"])
        XCTAssertEqual(
            problems("\toption quota '1G'\n\toption quota_period 'week'\n\toption quota_reset_day '8'\n"),
            ["braid.conf:10: lte.quota_reset_day: a weekly quota resets on a weekday, 1 (Monday) to 7 "
                + "(Sunday) (8)"])
        XCTAssertEqual(
            problems("\toption quota_action 'off'\n"),
            ["braid.conf:8: lte.quota_action: has no effect without quota (off)"])
        XCTAssertEqual(
            problems("\toption quota '1G'\n\toption quota_action 'throttle'\n"),
            ["braid.conf:9: lte.quota_action: must be backup or off (throttle)"])
        // The 31st is valid: months without one reset on their last day (QuotaPeriod).
        XCTAssertEqual(problems("\toption quota '1G'\n\toption quota_reset_day '31'\n"), [])
    }

    func testAReloadReportsTheCapChange() throws {
        let old = try config("\toption quota '1G'\n")
        let new = try config("\toption quota '2G'\n")
        let diff = GatewayConfigDiff(from: old, to: new)
        XCTAssertEqual(diff.uplinksChanged.map(\.name), ["lte"])
        XCTAssertTrue(diff.fixed.isEmpty)
        XCTAssertEqual(
            diff.summary,
            "uplink lte changed (quota 1000000000 bytes per month from day 1, then backup -> 2000000000 bytes per "
                + "month from day 1, then backup)")
    }
}
