import BraidConfig
import BraidCore
import BraidDataPlane
import XCTest

@testable import BraidGateway

/// The rules chain a gateway's `config rule` sections compile to: one statement per address family
/// and per protocol-specific verdict, in file order, ending with default_action.
final class TrafficRulesTests: XCTestCase {
    let mask: UInt32 = 0x00ff_0000

    func chain(_ rules: [TrafficRule], _ defaultAction: RuleAction = .bond) -> [String] {
        let marks = ["lte": UInt32(0x0002_0000)]
        let steering = TrafficRules.steering(rules, defaultAction: defaultAction, marks: { marks[$0] })
        return Interception.ruleset(
            .init(
                lanDevices: ["lan0"], listenerPort: 4801, fwmark: 0x6272,
                egress: .init(uplinks: [], markMask: mask), steering: steering)
        )
        .split(separator: "\n").drop { !$0.contains("chain rules {") }.dropFirst()
        .prefix { $0.trimmingCharacters(in: .whitespaces) != "}" }.map { $0.trimmingCharacters(in: .whitespaces) }
        // Every chain jumps to the operator's rules just before the default (OperatorRulesTests).
        .filter { $0 != "jump operator_rules" }
    }

    func prefix(_ s: String) -> IPPrefix { IPPrefix(s)! }
    func ports(_ s: String) -> PortRange { PortRange(s)! }

    func testDefaultActionEndsTheChain() {
        XCTAssertEqual(chain([]), ["goto bond"])
        XCTAssertEqual(chain([], .direct), ["accept"])
    }

    func testDirectRuleWithBothFamiliesIsOneStatementPerFamily() {
        let rule = TrafficRule(
            name: "bank", destinations: [prefix("198.51.100.0/24"), prefix("2001:db8:5::/48")],
            destinationPorts: [ports("443"), ports("8000-8080")], action: .direct)
        XCTAssertEqual(
            chain([rule]),
            [
                "ip daddr 198.51.100.0/24 meta l4proto tcp th dport { 443, 8000-8080 } counter accept "
                    + "comment \"bank\"",
                "ip6 daddr 2001:db8:5::/48 meta l4proto tcp th dport { 443, 8000-8080 } counter accept "
                    + "comment \"bank\"",
                "goto bond",
            ])
    }

    func testBlockAnyIsAResetForTCPAndICMPForTheRest() {
        let rule = TrafficRule(name: "ads", sourceMACs: [MACAddress("02:00:5E:10:00:01")!], proto: .any, action: .block)
        XCTAssertEqual(
            chain([rule], .direct),
            [
                "ether saddr 02:00:5e:10:00:01 meta l4proto tcp counter reject with tcp reset comment \"ads\"",
                "ether saddr 02:00:5e:10:00:01 meta l4proto != tcp counter reject with icmpx type admin-prohibited "
                    + "comment \"ads\"",
                "accept",
            ])
    }

    func testBondAnyBondsTCPAndRoutesUDPOfItsPorts() {
        let rule = TrafficRule(name: "web", destinationPorts: [ports("443")], proto: .any, action: .bond)
        XCTAssertEqual(
            chain([rule], .direct),
            [
                "meta l4proto tcp th dport 443 counter goto bond comment \"web\"",
                "meta l4proto udp th dport 443 counter accept comment \"web\"",
                "accept",
            ])
    }

    func testPinnedDirectMarksThePacketAndTheFlow() {
        let rule = TrafficRule(name: "tv", sources: [prefix("198.18.0.5")], proto: .udp, action: .direct, uplink: "lte")
        XCTAssertEqual(
            chain([rule]).first,
            "ip saddr 198.18.0.5/32 meta l4proto udp counter meta mark set 0x20000 "
                + "ct mark set ct mark and 0xfe00ffff or 0x1020000 accept comment \"tv\"")
    }

    func testFamiliesTheSourcesRuleOut() {
        // IPv4 sources, destinations of both families: only the IPv4 statement can ever match.
        let rule = TrafficRule(
            name: "r", destinations: [prefix("198.51.100.1"), prefix("2001:db8::1")],
            sources: [prefix("198.18.0.0/24")], action: .direct)
        XCTAssertEqual(
            chain([rule]),
            [
                "ip saddr 198.18.0.0/24 ip daddr 198.51.100.1/32 meta l4proto tcp counter accept comment \"r\"",
                "goto bond",
            ])
    }

    func testRulesKeepFileOrder() {
        let rules = [
            TrafficRule(name: "first", destinationPorts: [ports("25")], action: .block),
            TrafficRule(name: "second", action: .direct),
        ]
        XCTAssertEqual(
            chain(rules).map { $0.components(separatedBy: "comment ").last! }, ["\"first\"", "\"second\"", "goto bond"])
    }
}
