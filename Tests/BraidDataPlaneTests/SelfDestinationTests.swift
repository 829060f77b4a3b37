import BraidCore
import XCTest

@testable import BraidDataPlane

/// The transparent listener's second line against relaying a connection to the gateway itself
/// (the first is the interception table's input chain).
final class SelfDestinationTests: XCTestCase {
    let local: Set<IPAddress> = [IPAddress("198.18.1.2")!, IPAddress("2001:db8::1")!, IPAddress("127.0.0.1")!]

    func check(_ address: String, _ port: UInt16) -> SelfDestination? {
        SelfDestination.check(
            Endpoint(address: IPAddress(address)!, port: port), localAddresses: local)
    }

    func testOtherHostsAreRelayed() {
        XCTAssertNil(check("198.18.20.2", 80))
        XCTAssertNil(check("2001:db8:20::2", 443))
    }

    func testTheGatewaysOwnAddressesAreRefusedOnEveryPort() {
        XCTAssertEqual(check("198.18.1.2", 4801), .localAddress(IPAddress("198.18.1.2")!))
        XCTAssertEqual(check("198.18.1.2", 22), .localAddress(IPAddress("198.18.1.2")!))
        XCTAssertEqual(check("2001:db8::1", 80), .localAddress(IPAddress("2001:db8::1")!))
        XCTAssertEqual(check("127.0.0.1", 80), .localAddress(IPAddress("127.0.0.1")!))
    }

    func testAnIPv4MappedDestinationCountsAsItsIPv4Address() {
        let mapped = Endpoint(address: .v6(IPAddress("198.18.1.2")!.mappedIPv6Bytes), port: 80)
        XCTAssertEqual(
            SelfDestination.check(mapped, localAddresses: local),
            .localAddress(IPAddress("198.18.1.2")!))
    }

    func testARemoteServiceOnTheListenerPortIsRelayed() {
        // The input chain keeps the listener itself unreachable; another host's port 4801 is fine.
        XCTAssertNil(check("198.18.3.2", 4801))
        XCTAssertNil(check("2001:db8:20::2", 4801))
    }

    func testTheReasonNamesTheValue() {
        XCTAssertEqual(
            check("198.18.1.2", 4801)?.description, "addressed to the gateway's own address 198.18.1.2")
    }
}
