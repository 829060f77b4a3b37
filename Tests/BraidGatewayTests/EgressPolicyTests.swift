import BraidCore
import BraidDataPlane
import BraidNetlink
import XCTest

@testable import BraidGateway

/// Which uplink carries non-relayed traffic, with a hand clock: seconds in, moves out.
final class EgressPolicyTests: XCTestCase {
    let s: UInt64 = 1_000_000_000
    typealias C = EgressPolicy.Candidate

    func uplink(_ name: String, backup: Bool = false, healthy: Bool = true, since: UInt64 = 0,
        families: Set<EgressPolicy.Family> = [.ipv4, .ipv6]) -> C {
        C(name: name, backup: backup, families: families, healthy: healthy, since: since)
    }

    func testFirstChoiceIsTheFirstHealthyActiveUplinkForEachFamily() {
        var p = EgressPolicy(holddownNanos: 10 * s)
        let moves = p.decide([uplink("lte", backup: true), uplink("dsl"), uplink("line2")], now: 0)
        XCTAssertEqual(moves, [.init(family: .ipv4, from: nil, to: "dsl"), .init(family: .ipv6, from: nil, to: "dsl")])
        XCTAssertEqual(p.decide([uplink("lte", backup: true), uplink("dsl"), uplink("line2")], now: 1 * s), [])
    }

    func testADeadUplinkIsLeftAtOnceEvenForOneInsideItsHoldDown() {
        var p = EgressPolicy(holddownNanos: 10 * s)
        _ = p.decide([uplink("dsl"), uplink("lte")], now: 100 * s)
        // lte came up 1 s ago, dsl dies: lte takes the traffic now, hold-down or not.
        let moves = p.decide(
            [uplink("dsl", healthy: false, since: 101 * s), uplink("lte", since: 100 * s)], now: 101 * s)
        XCTAssertEqual(moves.map(\.to), ["lte", "lte"])
        XCTAssertEqual(moves.map(\.from), ["dsl", "dsl"])
    }

    func testMovesBackOnlyAfterTheHoldDown() {
        var p = EgressPolicy(holddownNanos: 10 * s)
        _ = p.decide([uplink("dsl"), uplink("lte")], now: 0)
        _ = p.decide([uplink("dsl", healthy: false, since: 5 * s), uplink("lte")], now: 5 * s)
        XCTAssertEqual(p.current[.ipv4], "lte")
        // dsl up again at 20 s: still lte at 29.9 s, dsl at 30 s.
        let back = [uplink("dsl", since: 20 * s), uplink("lte")]
        XCTAssertEqual(p.decide(back, now: 20 * s), [])
        XCTAssertEqual(p.decide(back, now: 29 * s + 900_000_000), [])
        XCTAssertEqual(p.decide(back, now: 30 * s).map(\.description), ["ipv4: lte -> dsl", "ipv6: lte -> dsl"])
    }

    func testAFlapInsideTheHoldDownNeverDragsTrafficBack() {
        var p = EgressPolicy(holddownNanos: 10 * s)
        _ = p.decide([uplink("dsl"), uplink("lte")], now: 0)
        _ = p.decide([uplink("dsl", healthy: false, since: 1 * s), uplink("lte")], now: 1 * s)
        var moves: [EgressPolicy.Move] = []
        // dsl up 3 s, down 3 s, for a minute.
        for t in stride(from: 2, to: 60, by: 1) {
            let up = (t / 3) % 2 == 0
            let since = UInt64(t - t % 3) * s
            moves += p.decide([uplink("dsl", healthy: up, since: since), uplink("lte")], now: UInt64(t) * s)
        }
        XCTAssertEqual(moves, [])
        XCTAssertEqual(p.current[.ipv4], "lte")
    }

    func testActiveBeforeBackupThenOrder() {
        var p = EgressPolicy(holddownNanos: 0)
        _ = p.decide([uplink("lte", backup: true), uplink("dsl", healthy: false), uplink("line2")], now: 0)
        XCTAssertEqual(p.current[.ipv4], "line2")
        _ = p.decide(
            [uplink("lte", backup: true), uplink("dsl", healthy: false), uplink("line2", healthy: false)], now: 1 * s)
        XCTAssertEqual(p.current[.ipv4], "lte")
        // Nothing healthy: no egress rule, the main table's routes apply.
        let moves = p.decide(
            [
                uplink("lte", backup: true, healthy: false), uplink("dsl", healthy: false),
                uplink("line2", healthy: false),
            ],
            now: 2 * s)
        XCTAssertEqual(moves, [.init(family: .ipv4, from: "lte", to: nil), .init(family: .ipv6, from: "lte", to: nil)])
    }

    func testWhenTheCurrentDiesASettledUplinkBeatsABetterOneStillInItsHoldDown() {
        var p = EgressPolicy(holddownNanos: 10 * s)
        _ = p.decide([uplink("dsl", healthy: false), uplink("lte"), uplink("line2")], now: 0)
        XCTAssertEqual(p.current[.ipv4], "lte")
        // dsl just came back (flapping); lte dies: line2, up for long, takes it rather than dsl.
        let moves = p.decide(
            [uplink("dsl", since: 50 * s), uplink("lte", healthy: false, since: 51 * s), uplink("line2")], now: 51 * s)
        XCTAssertEqual(moves.map(\.to), ["line2", "line2"])
    }

    func testEachFamilyOnAnUplinkThatHasIt() {
        var p = EgressPolicy(holddownNanos: 10 * s)
        let moves = p.decide(
            [uplink("dsl", families: [.ipv4]), uplink("lte", families: [.ipv6]), uplink("line2")], now: 0)
        XCTAssertEqual(moves, [.init(family: .ipv4, from: nil, to: "dsl"), .init(family: .ipv6, from: nil, to: "lte")])
    }

    func testAnUplinkRemovedByAReloadIsLeft() {
        var p = EgressPolicy(holddownNanos: 10 * s)
        _ = p.decide([uplink("dsl"), uplink("lte")], now: 0)
        XCTAssertEqual(p.decide([uplink("lte")], now: 1 * s).map(\.from), ["dsl", "dsl"])
    }

    func testMarksAreStablePerNameAndInsideTheMask() {
        var m = EgressMarks(uplinks: ["dsl", "lte", "line2"])
        XCTAssertEqual(m.mark("lte"), 0x0002_0000)
        m.release("dsl")
        XCTAssertEqual(m.assign("wan4"), 0x0001_0000)  // the lowest free slot
        XCTAssertEqual(m.assign("lte"), 0x0002_0000)
        for name in ["dsl", "lte", "line2", "wan4"] {
            if let mark = m.mark(name) { XCTAssertEqual(mark & ~EgressMarks.mask, 0) }
        }
    }

    /// The start after a crash removes braid's egress rules only.
    func testLeftoverEgressRules() {
        let main = RouteTables.Rule(
            ipv6: false, priority: EgressRouting.mainRulePriority, table: 254, suppressPrefixLength: 0)
        let egress6 = RouteTables.Rule(ipv6: true, priority: EgressRouting.egressRulePriority, table: 4802)
        let operatorsMain = RouteTables.Rule(ipv6: false, priority: EgressRouting.mainRulePriority, table: 254)
        let operatorsTable = RouteTables.Rule(ipv6: false, priority: EgressRouting.egressRulePriority, table: 200)
        let found = EgressRouting.leftoverRules([main, egress6, operatorsMain, operatorsTable], tables: [4801, 4802])
        XCTAssertEqual(found, [main, egress6])
    }

    /// The nftables rules for routed LAN traffic: marks in forward, one masquerade, QUIC refused.
    func testInterceptionEgressRules() {
        let e = Interception.Egress(
            uplinks: [.init(device: "wan1", mark: 0x10000), .init(device: "wan2", mark: 0x20000)],
            markMask: EgressMarks.mask, refuseQUIC: true)
        let ruleset = Interception.ruleset(
            .init(lanDevices: ["lan0"], listenerPort: 4801, fwmark: 0x6272, egress: e))
        XCTAssertTrue(
            ruleset.contains("iifname @lan_devices udp dport 443 counter reject with icmpx type port-unreachable"))
        XCTAssertTrue(
            ruleset.contains(
                "iifname @lan_devices oifname \"wan2\" meta l4proto != tcp ct state new "
                    + "ct mark set ct mark and 0xff00ffff or 0x20000"))
        XCTAssertTrue(ruleset.contains("ct mark and 0xff0000 != 0 masquerade"))
        var pass = e
        pass.refuseQUIC = false
        XCTAssertFalse(
            Interception.ruleset(.init(lanDevices: ["lan0"], listenerPort: 4801, fwmark: 1, egress: pass))
                .contains("dport 443"))
    }
}
