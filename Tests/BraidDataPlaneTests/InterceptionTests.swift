import XCTest

@testable import BraidDataPlane

final class InterceptionTests: XCTestCase {
    let settings = Interception.Settings(lanDevices: ["lan0", "lan1"], listenerPort: 4801, fwmark: 0x6272)

    func testLANTCPIsHandedToTheListenerWithTheMark() {
        let rules = Interception.ruleset(settings)
        XCTAssertTrue(rules.contains(#"elements = { "lan0", "lan1" }"#))
        XCTAssertTrue(rules.contains("meta l4proto tcp tproxy ip to :4801 meta mark set 0x6272 accept"))
        XCTAssertTrue(rules.contains("meta l4proto tcp tproxy ip6 to :4801 meta mark set 0x6272 accept"))
    }

    /// A connection to the listener's port that TPROXY did not hand over (from an uplink, or to the
    /// gateway's own address) is dropped before the listener sees it: relayed, it would loop.
    func testOnlyPacketsTPROXYMarkedReachTheListenerPort() {
        let rules = Interception.ruleset(settings)
        XCTAssertTrue(rules.contains("type filter hook input priority filter; policy accept;"))
        XCTAssertTrue(rules.contains("tcp dport 4801 meta mark != 0x6272 counter drop"))
    }

    /// The status page's port is dropped unless it arrives on a LAN device or from the box
    /// itself: the listener binds the LAN address, but Linux accepts that address on any device.
    func testLANOnlyPortsAreDroppedFromEveryOtherDevice() {
        var s = settings
        s.lanOnlyPorts = [80]
        let rules = Interception.ruleset(s)
        XCTAssertTrue(rules.contains("elements = { 80 }"))
        XCTAssertTrue(rules.contains(#"tcp dport @lan_only_ports iifname != @lan_devices iifname != "lo" counter drop"#))
        // With the page off the set is declared empty: nft refuses `elements = { }`.
        let off = Interception.ruleset(settings)
        XCTAssertFalse(off.contains("elements = {  }"))
        XCTAssertTrue(off.contains("set lan_only_ports"))
    }

    /// With the daemon gone and its table left behind, TPROXY finds no listener and the packet
    /// would go on through the main table, unbonded: the last rule of the chain drops it.
    func testLANTCPWithoutAListenerIsDroppedNotRouted() {
        let rules = Interception.ruleset(settings)
        let tproxy6 = rules.range(of: "tproxy ip6 to :4801")
        let drop = rules.range(of: "meta l4proto tcp counter drop")
        XCTAssertNotNil(tproxy6)
        XCTAssertNotNil(drop)
        if let tproxy6, let drop { XCTAssertLessThan(tproxy6.lowerBound, drop.lowerBound) }
    }
}
