import BraidCore
import XCTest

@testable import BraidConfig

/// The concentrator's `config rule` sections with `option class`: the gateway's matches and
/// actions, no uplink, and bounded per class as the control message that carries them is.
final class OperatorRuleConfigTests: XCTestCase {
    let concentrator = """
        config concentrator 'main'
        \toption psk_file '/etc/braid/psk'

        config class 'standard'

        config class 'office'

        """

    func read(_ text: String) -> (config: ConcentratorConfig?, problems: [String]) {
        do {
            var reader = BraidConfigReader(package: try UCIParser.parse(text, file: "braid.conf"))
            let problems = reader.check(role: .concentrator).problems.map(\.description)
            return (problems.isEmpty ? try reader.concentrator() : nil, problems)
        } catch {
            return (nil, ["\(error)"])
        }
    }

    func testRulesAreReadPerClassInFileOrder() throws {
        let text =
            concentrator + """
                config rule 'bank'
                \toption class 'office'
                \tlist dest '198.51.100.0/24'
                \tlist dest_port '443'
                \toption action 'direct'

                config rule 'ads'
                \toption class 'standard'
                \tlist src_mac '02:00:5e:10:00:01'
                \toption proto 'any'
                \toption action 'block'

                config rule 'video'
                \toption class 'office'
                \tlist dest '2001:db8:7::/48'
                \toption action 'bond'

                """
        let (config, problems) = read(text)
        XCTAssertEqual(problems, [])
        let rules = try XCTUnwrap(config?.rules)
        XCTAssertEqual(rules.map(\.serviceClass), ["office", "standard", "office"])
        XCTAssertEqual(OperatorRuleConfig.rules(of: "office", in: rules).map(\.name), ["bank", "video"])
        XCTAssertEqual(rules[0].rule.destinationPorts, [PortRange("443")!])
        XCTAssertEqual(rules[1].rule.proto, .any)
        XCTAssertEqual(rules[1].rule.action, .block)
        XCTAssertNil(rules[0].rule.uplink)
    }

    func testProblemsNameTheRuleOptionAndValue() {
        let cases: [(String, String, [String])] = [
            (
                "uplink",
                "config rule 'bank'\n\toption class 'office'\n\toption action 'direct'\n\toption uplink 'lte'\n",
                [
                    "braid.conf:10: bank.uplink: an operator rule cannot name an uplink: the concentrator does not "
                        + "know a gateway's uplinks (a direct rule leaves by the best healthy one) (lte)"
                ]
            ),
            (
                "no class", "config rule 'bank'\n\toption action 'direct'\n",
                ["braid.conf:7: bank.class: required option is not set"]
            ),
            (
                "unknown class", "config rule 'bank'\n\toption class 'gold'\n\toption action 'direct'\n",
                ["braid.conf:8: bank.class: no 'config class' section has this name (gold)"]
            ),
            (
                "bond udp",
                "config rule 'dns'\n\toption class 'office'\n\toption proto 'udp'\n\toption action 'bond'\n",
                ["braid.conf:9: dns.proto: a bond rule needs tcp or any: only TCP is relayed (udp)"]
            ),
        ]
        for (name, rules, expected) in cases {
            XCTAssertEqual(read(concentrator + rules).problems, expected, name)
        }
    }

    func testAClassWithMoreRulesThanAGatewayTakesIsRefused() {
        var text = concentrator
        for i in 0...OperatorRuleLimits.maximumRules {
            text += "config rule 'r\(i)'\n\toption class 'office'\n\toption action 'direct'\n\n"
        }
        // Another class has a bound of its own.
        text += "config rule 'other'\n\toption class 'standard'\n\toption action 'direct'\n"
        let problems = read(text).problems
        XCTAssertEqual(problems.count, 1, "\(problems)")
        XCTAssertTrue(
            problems.first?.contains("r64.class: more than 64 rules for this class, the most a gateway takes (office)")
                == true, "\(problems)")
    }

    func testAClassWhoseRulesExceedTheFrameIsRefused() {
        var text = concentrator
        for i in 0..<30 {
            text += "config rule 'r\(i)'\n\toption class 'office'\n\toption action 'direct'\n"
            for j in 0..<30 { text += "\tlist dest '2001:db8:\(i):\(j)::/64'\n" }
            text += "\n"
        }
        let problems = read(text).problems
        XCTAssertEqual(problems.count, 1, "\(problems)")
        XCTAssertTrue(problems.first?.contains("more than the 16384 a gateway takes (office)") == true, "\(problems)")
    }

    func testTheGatewayStillRefusesAClassOnItsRules() {
        let gateway = """
            config gateway 'main'
            \toption server '198.18.10.2'
            \toption psk_file '/etc/braid/psk'
            \tlist lan_device 'br-lan'

            config rule 'bank'
            \toption class 'office'
            \toption action 'direct'

            """
        var reader = BraidConfigReader(package: try! UCIParser.parse(gateway, file: "braid.conf"))
        XCTAssertEqual(
            reader.check(role: .gateway).problems.map(\.description),
            ["braid.conf:7: bank.class: unknown option (office)"])
        XCTAssertThrowsError(try reader.gateway())
    }

    func testReloadNamesTheClassesWhoseRulesChanged() throws {
        let rule = { (cls: String, port: String) in
            "config rule 'x_\(cls)'\n\toption class '\(cls)'\n\tlist dest_port '\(port)'\n\toption action 'direct'\n\n"
        }
        let old = try XCTUnwrap(read(concentrator + rule("office", "443") + rule("standard", "80")).config)
        let new = try XCTUnwrap(read(concentrator + rule("office", "8443") + rule("standard", "80")).config)
        let diff = ConcentratorConfigDiff(from: old, to: new)
        XCTAssertEqual(diff.rulesChanged, ["office"])
        XCTAssertTrue(diff.summary.contains("rules of class office changed"), diff.summary)
        XCTAssertEqual(ConcentratorConfigDiff(from: old, to: old).rulesChanged, [])
    }
}
