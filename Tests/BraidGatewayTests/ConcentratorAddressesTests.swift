import BraidCore
import BraidNetlink
import XCTest

@testable import BraidGateway

/// Which concentrator address each uplink dials, and the planner's use of it.
final class ConcentratorAddressesTests: XCTestCase {
    let c4 = IPAddress("198.18.10.2")!
    let c6 = IPAddress("2001:db8:10::2")!
    let v4 = IPAddress("198.18.1.2")!
    let v6 = IPAddress("2001:db8:4::2")!

    func testEachUplinkDialsTheAddressOfItsOwnFamily() {
        let s = ConcentratorAddresses(configured: [c4], announced: [c6])
        XCTAssertEqual(s.path(from: [v4])?.server, c4)
        XCTAssertEqual(s.path(from: [v6])?.source, v6)
        XCTAssertEqual(s.path(from: [v6])?.server, c6)
        // Dual stack: the family the operator configured first.
        XCTAssertEqual(s.path(from: [v6, v4])?.server, c4)
        XCTAssertEqual(ConcentratorAddresses(configured: [c6, c4]).path(from: [v4, v6])?.server, c6)
        // No family in common: no path (the uplink is shown down with the reason).
        XCTAssertNil(ConcentratorAddresses(configured: [c4]).path(from: [v6]))
    }

    /// Only a concentrator with both families needs connections that take subflows of both.
    func testBothFamilies() {
        XCTAssertFalse(ConcentratorAddresses(configured: [c4]).bothFamilies)
        XCTAssertFalse(ConcentratorAddresses(configured: [c6]).bothFamilies)
        XCTAssertTrue(ConcentratorAddresses(configured: [c4], announced: [c6]).bothFamilies)
    }

    func testConfiguredAddressesComeBeforeAnnouncedOnes() {
        let other6 = IPAddress("2001:db8:99::2")!
        let s = ConcentratorAddresses(configured: [c4, c6], announced: [other6, c4])
        XCTAssertEqual(s.all, [c4, c6, other6])
        XCTAssertEqual(s.address(sameFamilyAs: v6), c6)
        XCTAssertTrue(s.contains(other6))
        XCTAssertFalse(s.contains(IPAddress("198.18.99.1")!))
    }

    /// What an announcement may not add: addresses that lead nowhere from the gateway.
    func testAnnouncementsKeepOnlyDialableAddresses() {
        let list = ["0.0.0.0", "127.0.0.1", "169.254.1.1", "224.0.0.1", "::", "::1", "fe80::1", "ff02::1",
            "::ffff:198.18.10.2", "198.18.10.2", "2001:db8:10::2"].map { IPAddress($0)! }
        XCTAssertEqual(ConcentratorAddresses.dialable(list), [c4, c6])
    }

    /// A session that started over IPv4 gets a subflow from the IPv6-only uplink to the
    /// concentrator's IPv6 address, in the same connection.
    func testPlannerJoinsAnIPv6OnlyUplinkToAnIPv4Session() {
        var p = SubflowPlanner(servers: ConcentratorAddresses(configured: [c4, c6]), maxSubflows: 9)
        var e = MPTCPEvent(kind: .created, token: 7)
        e.local = Endpoint(address: v4, port: 1000)
        e.remote = Endpoint(address: c4, port: 4800)
        p.handle(e)
        e.kind = .established
        p.handle(e)
        let paths = [
            SubflowPlanner.Path(address: v4, server: c4, ifindex: 2, backup: false, healthy: true),
            SubflowPlanner.Path(address: v6, server: c6, ifindex: 5, backup: false, healthy: true),
        ]
        XCTAssertEqual(
            p.plan(paths: paths, now: 0),
            [.create(token: 7, local: v6, id: 1, backup: false, ifindex: 5, remote: Endpoint(address: c6, port: 4800))])
    }

    /// Connections to the announced address are the gateway's too: one that started over IPv6
    /// (the only healthy uplink) gets IPv4 subflows to the IPv4 address.
    func testPlannerManagesConnectionsToAnnouncedAddresses() {
        var p = SubflowPlanner(servers: ConcentratorAddresses(configured: [c4]), maxSubflows: 9)
        var e = MPTCPEvent(kind: .created, token: 9)
        e.local = Endpoint(address: v6, port: 1000)
        e.remote = Endpoint(address: c6, port: 4800)
        p.handle(e)
        XCTAssertTrue(p.connections.isEmpty, "a connection to an unknown address is not ours")
        p.servers = ConcentratorAddresses(configured: [c4], announced: [c6])
        p.handle(e)
        e.kind = .established
        p.handle(e)
        let paths = [
            SubflowPlanner.Path(address: v4, server: c4, ifindex: 2, backup: false, healthy: true),
            SubflowPlanner.Path(address: v6, server: c6, ifindex: 5, backup: false, healthy: true),
        ]
        XCTAssertEqual(
            p.plan(paths: paths, now: 0),
            [.create(token: 9, local: v4, id: 1, backup: false, ifindex: 2, remote: Endpoint(address: c4, port: 4800))])
    }
}

/// The C library's resolver, through /etc/hosts (no DNS in a unit test).
final class HostResolverTests: XCTestCase {
    func testResolvesHostsEntriesAndLiterals() throws {
        XCTAssertTrue(try HostResolver.resolve("localhost").contains(IPAddress("127.0.0.1")!))
        XCTAssertEqual(try HostResolver.resolve("2001:db8::1"), [IPAddress("2001:db8::1")!])
    }
}
