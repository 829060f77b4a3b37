import BraidCore
import BraidNetlink
import Logging
import XCTest

@testable import BraidGateway

/// EgressRouting against a recording twin of the kernel: which rules it installs, in which order a
/// move replaces them, which flows it deletes, and what a stop and a start after a crash leave.
final class EgressRoutingTests: XCTestCase {
    final class RecordingKernel: EgressKernel {
        var installed: [RouteTables.Rule] = []
        var calls: [String] = []

        func rules() throws -> [RouteTables.Rule] { installed }
        func add(_ rule: RouteTables.Rule) throws {
            calls.append("add \(rule)")
            installed.append(rule)
        }
        func delete(_ rule: RouteTables.Rule) throws {
            guard let i = installed.firstIndex(of: rule) else { throw SystemError("delete \(rule)", errno: ENOENT) }
            calls.append("delete \(rule)")
            installed.remove(at: i)
        }
        func deleteConntrack(mark: UInt32, mask: UInt32, ipv6: Bool) throws {
            calls.append("conntrack \(ipv6 ? "ipv6" : "ipv4") mark 0x\(String(mark, radix: 16))")
        }
    }

    let s: UInt64 = 1_000_000_000
    let tables: [String: UInt32] = ["dsl": 4801, "lte": 4802]

    func candidates(dslHealthy: Bool, dslSince: UInt64 = 0) -> [EgressPolicy.Candidate] {
        [
            .init(name: "dsl", backup: false, families: [.ipv4, .ipv6], healthy: dslHealthy, since: dslSince),
            .init(name: "lte", backup: false, families: [.ipv4], healthy: true, since: 0),
        ]
    }

    func routing(_ kernel: RecordingKernel) throws -> EgressRouting {
        try EgressRouting(
            holddownSeconds: 10, marks: EgressMarks(uplinks: ["dsl", "lte"]), logger: Logger(label: "test"),
            kernel: kernel)
    }

    func testAMoveAddsTheNewRuleBeforeDeletingTheOldThenDeletesTheFlowsLeft() throws {
        let kernel = RecordingKernel()
        let egress = try routing(kernel)
        try egress.install(tables: [4801, 4802])
        egress.steer(candidates(dslHealthy: true), tables: tables, now: 0)
        kernel.calls = []
        egress.steer(candidates(dslHealthy: false, dslSince: 5 * s), tables: tables, now: 5 * s)
        // IPv4 moves to lte; IPv6 has no other uplink with an address: its rule goes (main applies).
        XCTAssertEqual(
            kernel.calls,
            [
                "add ipv4 rule pref 4901 lookup 4802", "delete ipv4 rule pref 4901 lookup 4801",
                "delete ipv6 rule pref 4901 lookup 4801", "conntrack ipv4 mark 0x10000", "conntrack ipv6 mark 0x10000",
            ])
    }

    func testStopRemovesEverythingAndAStartAfterACrashStartsClean() throws {
        let kernel = RecordingKernel()
        let first = try routing(kernel)
        try first.install(tables: [4801, 4802])
        first.steer(candidates(dslHealthy: true), tables: tables, now: 0)
        XCTAssertEqual(kernel.installed.count, 4)
        // Killed: nothing removed. The next run finds braid's four rules and replaces them.
        let second = try routing(kernel)
        try second.install(tables: [4801, 4802])
        second.steer(candidates(dslHealthy: true), tables: tables, now: 0)
        XCTAssertEqual(kernel.installed.count, 4)
        second.remove()
        XCTAssertEqual(kernel.installed, [])
    }

    func testARuleDeletedByHandIsPutBack() throws {
        let kernel = RecordingKernel()
        let egress = try routing(kernel)
        try egress.install(tables: [4801, 4802])
        egress.steer(candidates(dslHealthy: true), tables: tables, now: 0)
        let before = Set(kernel.installed)
        kernel.installed.removeAll { $0.priority == EgressRouting.egressRulePriority && !$0.ipv6 }
        egress.mend()
        XCTAssertEqual(Set(kernel.installed), before)
    }

    func testAReloadThatMovesTheUplinksTableMovesTheRuleWithoutDeletingFlows() throws {
        let kernel = RecordingKernel()
        let egress = try routing(kernel)
        try egress.install(tables: [4801, 4802, 4803])
        egress.steer(candidates(dslHealthy: true), tables: tables, now: 0)
        kernel.calls = []
        egress.steer(candidates(dslHealthy: true), tables: ["dsl": 4803, "lte": 4802], now: 1 * s)
        XCTAssertFalse(kernel.calls.contains { $0.hasPrefix("conntrack") })
        XCTAssertEqual(
            Set(kernel.installed.filter { $0.priority == EgressRouting.egressRulePriority }.map(\.table)), [4803])
    }
}
