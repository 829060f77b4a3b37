import BraidCore
import BraidNetlink
import XCTest

@testable import BraidGateway

/// Which rules a start after a crash removes: braid's priorities pointing at braid's tables,
/// whatever address they were for; nothing of the operator's.
final class LeftoverRulesTests: XCTestCase {
    func testBraidsPrioritiesAndTablesOnly() {
        let source = UplinkManager.sourceRulePriority
        let mark = UplinkManager.markRulePriority
        let gone = RouteTables.Rule(ipv6: false, priority: source, table: 101, source: IPPrefix("198.18.1.200/32"))
        let v6 = RouteTables.Rule(ipv6: true, priority: source, table: 102, source: IPPrefix("2001:db8:1::2/128"))
        let markRule = RouteTables.Rule(ipv6: false, priority: mark, table: 100, fwmark: 1)
        let operatorsTable = RouteTables.Rule(
            ipv6: false, priority: source, table: 200, source: IPPrefix("198.18.9.9/32"))
        let operatorsPriority = RouteTables.Rule(
            ipv6: false, priority: 1000, table: 101, source: IPPrefix("198.18.1.2/32"))
        let main = RouteTables.Rule(ipv6: false, priority: 32766, table: 254)
        let found = UplinkManager.leftoverRules(
            [gone, v6, markRule, operatorsTable, operatorsPriority, main], tables: [100, 101, 102])
        XCTAssertEqual(found, [gone, v6, markRule])
    }
}
