import BraidConfig
import BraidCore
import BraidWire
import XCTest

@testable import BraidDataPlane
@testable import BraidGateway

#if canImport(Glibc)
    import Glibc
#endif

/// The operator's rules on the gateway: a chain of their own, jumped to after the gateway's rules
/// and before default_action; their counters read back for `braid status`; the last set kept in
/// a file that is read through the same bounded decoder as the control channel.
final class OperatorRulesTests: XCTestCase {
    typealias Rule = ControlMessage.OperatorRule

    let pushed = [
        Rule(name: "bank_direct", action: .direct, destinations: [IPPrefix("198.51.100.0/24")!]),
        Rule(name: "ads", action: .block, proto: .any, sourceMACs: [MACAddress("02:00:5e:10:00:01")!]),
    ]

    func chain(_ name: String, in ruleset: String) -> [String] {
        ruleset.split(separator: "\n").drop { !$0.contains("chain \(name) {") }.dropFirst()
            .prefix { $0.trimmingCharacters(in: .whitespaces) != "}" }.map { $0.trimmingCharacters(in: .whitespaces) }
    }

    func testOperatorChainComesAfterTheGatewaysRulesAndBeforeTheDefault() {
        let local = TrafficRule(name: "mine", destinationPorts: [PortRange("8090")!], action: .bond)
        var settings = Interception.Settings(
            lanDevices: ["lan0"], listenerPort: 4801, fwmark: 0x6272,
            steering: TrafficRules.steering([local], defaultAction: .direct, marks: { _ in nil }))
        settings.operatorRules = OperatorRules.statements(pushed)
        let ruleset = Interception.ruleset(settings)
        XCTAssertEqual(
            chain("rules", in: ruleset),
            ["meta l4proto tcp th dport 8090 counter goto bond comment \"mine\"", "jump operator_rules", "accept"])
        XCTAssertEqual(
            chain("operator_rules", in: ruleset),
            [
                "ip daddr 198.51.100.0/24 meta l4proto tcp counter accept comment \"bank_direct\"",
                "ether saddr 02:00:5e:10:00:01 meta l4proto tcp counter reject with tcp reset comment \"ads\"",
                "ether saddr 02:00:5e:10:00:01 meta l4proto != tcp counter reject with icmpx type admin-prohibited "
                    + "comment \"ads\"",
            ])
        XCTAssertEqual(
            chain("operator_rules", in: Interception.ruleset(.init(lanDevices: ["lan0"], listenerPort: 1, fwmark: 1))),
            [])
    }

    func testHitsAreSummedPerRuleFromTheListing() {
        let listing = """
            table inet braid {
            \tchain operator_rules {
            \t\tip daddr 198.51.100.0/24 meta l4proto tcp counter packets 3 bytes 180 accept comment "bank_direct"
            \t\tip6 daddr 2001:db8::/32 meta l4proto tcp counter packets 2 bytes 160 accept comment "bank_direct"
            \t\tether saddr 02:00:5e:10:00:01 counter packets 0 bytes 0 reject with tcp reset comment "ads"
            \t\tjump operator_rules
            \t}
            }
            """
        XCTAssertEqual(
            Interception.hits(inListing: listing),
            [.init(name: "bank_direct", packets: 5, bytes: 340), .init(name: "ads", packets: 0, bytes: 0)])
    }

    func testTheKeptSetSurvivesAndADamagedFileIsRefused() throws {
        var template = Array("/tmp/braid-oprules-XXXXXX".utf8CString)
        let dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        defer {
            unlink(dir + "/gateway.operator-rules")
            rmdir(dir)
        }
        let file = OperatorRulesFile(statusSocket: dir + "/gateway.sock")
        XCTAssertEqual(file.path, dir + "/gateway.operator-rules")
        XCTAssertNil(try file.load())
        try file.save(pushed)
        XCTAssertEqual(try file.load(), pushed)
        try file.save([])
        XCTAssertEqual(try file.load(), [])
        // A damaged file: a frame of another type, then one with a bad action byte.
        for bytes in [try ControlMessage.goodbye.encode(), [1, 9, 0, 5, 1, 1, 0x61, 7, 1]] {
            let fd = open(file.path, O_WRONLY | O_TRUNC)
            _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
            XCTAssertThrowsError(try file.load())
        }
    }
}
