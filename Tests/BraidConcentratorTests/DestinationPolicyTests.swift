import BraidConfig
import BraidCore
import XCTest

@testable import BraidConcentrator

/// The concentrator's destination policy without a socket: endpoints in, refusals out.
final class DestinationPolicyTests: XCTestCase {
    let own: Set<IPAddress> = [IPAddress("198.18.10.2")!, IPAddress("2001:db8:10::2")!]

    func refusal(_ policy: DestinationPolicy, _ address: String, port: UInt16 = 443) -> DestinationRefusal? {
        policy.refusal(for: Endpoint(address: IPAddress(address)!, port: port), localAddresses: own)
    }

    func assertRefused(
        _ address: String, by ruleName: String, embedded: EmbeddedIPv4.Form? = nil,
        policy: DestinationPolicy = DestinationPolicy(), port: UInt16 = 443, line: UInt = #line
    ) {
        guard let r = refusal(policy, address, port: port) else {
            return XCTFail("\(address) port \(port) was allowed; want refused by \(ruleName)", line: line)
        }
        XCTAssertEqual(r.ruleName, ruleName, "\(address): \(r)", line: line)
        XCTAssertEqual(r.embedded?.form, embedded, "\(address): \(r)", line: line)
    }

    func assertAllowed(
        _ address: String, policy: DestinationPolicy = DestinationPolicy(), port: UInt16 = 443, line: UInt = #line
    ) {
        if let r = refusal(policy, address, port: port) { XCTFail("\(address) port \(port) refused: \(r)", line: line) }
    }

    // MARK: - built-in ranges

    func testEveryBuiltInRangeIsRefusedAtItsEdges() {
        for range in DestinationPolicy.never + DestinationPolicy.builtIn {
            let p = range.prefix
            var last = p.address.bytes
            var first = p.address.bytes
            var remaining = p.length
            for i in 0..<first.count {
                let keep = max(0, min(8, remaining))
                let host: UInt8 = keep == 8 ? 0 : 0xff >> UInt8(keep)
                first[i] &= ~host
                last[i] |= host
                remaining -= 8
            }
            for a in [first, last].map({ IPAddress(bytes: $0)! }) {
                let r = DestinationPolicy().refusal(for: Endpoint(address: a, port: 443), localAddresses: [])
                XCTAssertNotNil(r, "\(a) in \(range) was allowed")
            }
        }
    }

    func testThePrivateSharedAndMetadataAddressesOfTheIssue() {
        assertRefused("172.16.5.1", by: "built-in 172.16.0.0/12")
        assertRefused("10.1.2.3", by: "built-in 10.0.0.0/8")
        assertRefused("192.168.1.1", by: "built-in 192.168.0.0/16")
        assertRefused("100.64.5.1", by: "built-in 100.64.0.0/10")
        assertRefused("fd00:5::1", by: "built-in fc00::/7")
        assertRefused("fc00::1", by: "built-in fc00::/7")
        assertRefused("169.254.169.254", by: "built-in 169.254.169.254/32")
        assertRefused("169.254.170.2", by: "built-in 169.254.170.2/32")
        assertRefused("100.100.100.200", by: "built-in 100.100.100.200/32")
        assertRefused("168.63.129.16", by: "built-in 168.63.129.16/32")
        assertRefused("192.0.0.192", by: "built-in 192.0.0.192/32")
        assertRefused("fd00:ec2::254", by: "built-in fd00:ec2::254/128")
        assertRefused("169.254.1.1", by: "built-in 169.254.0.0/16")
        assertRefused("fe80::1", by: "built-in fe80::/10")
        assertRefused("fec0::1", by: "built-in fec0::/10")
        assertRefused("100::1", by: "built-in 100::/64")
        assertRefused("127.0.0.1", by: "built-in 127.0.0.0/8")
        assertRefused("0.0.0.0", by: "built-in 0.0.0.0/8")
        assertRefused("255.255.255.255", by: "built-in 240.0.0.0/4")
        assertRefused("224.0.0.1", by: "built-in 224.0.0.0/4")
        assertRefused("::", by: "built-in ::/128")
        assertRefused("::1", by: "built-in ::1/128")
        assertRefused("ff02::1", by: "built-in ff00::/8")
    }

    func testPublicDocumentationAndBenchmarkingRangesAreAllowed() {
        for a in [
            "192.0.2.1", "198.51.100.7", "203.0.113.9", "198.18.20.2", "198.19.255.254", "2001:db8::1",
            "2001:db8:20::2", "93.184.215.14", "2606:4700::1111", "172.15.255.255", "172.32.0.0", "100.63.255.255",
            "100.128.0.0", "168.63.129.17", "64:ff9b::5db8:d70e", "2002:5db8:d70e::1",
        ] {
            assertAllowed(a)
        }
    }

    // MARK: - embedded IPv4

    func testEmbeddedFormsOfADeniedIPv4AreRefused() {
        assertRefused("::ffff:172.16.5.1", by: "built-in 172.16.0.0/12", embedded: .ipv4Mapped)
        assertRefused("::172.16.5.1", by: "built-in 172.16.0.0/12", embedded: .ipv4Compatible)
        assertRefused("64:ff9b::a9fe:a9fe", by: "built-in 169.254.169.254/32", embedded: .nat64)
        assertRefused("64:ff9b::10.0.0.1", by: "built-in 10.0.0.0/8", embedded: .nat64)
        assertRefused("2002:a9fe:a9fe::1", by: "built-in 169.254.169.254/32", embedded: .sixToFour)
        assertRefused("2002:ac10:501:1::1", by: "built-in 172.16.0.0/12", embedded: .sixToFour)
        assertRefused("2002:7f00:1::", by: "built-in 127.0.0.0/8", embedded: .sixToFour)
        // Teredo: server 198.18.20.2 (allowed), client 169.254.169.254 inverted in the last 32 bits.
        assertRefused("2001:0:c612:1402::5601:5601", by: "built-in 169.254.169.254/32", embedded: .teredoClient)
        // Teredo: server 10.0.0.1, client 192.0.2.1 (allowed).
        assertRefused("2001:0:a00:1::3fff:fdfe", by: "built-in 10.0.0.0/8", embedded: .teredoServer)
        assertAllowed("2001:0:c612:1402::3fff:fdfe")
    }

    func testNAT64LocalUseIsRefusedAndItsEmbeddedAddressesCheckedWhenOpened() {
        assertRefused("64:ff9b:1::c000:201", by: "built-in 64:ff9b:1::/48")
        let open = DestinationPolicy(allowDestinations: [IPPrefix("64:ff9b:1::/48")!])
        assertAllowed("64:ff9b:1::c000:201", policy: open)
        // RFC 6052 §2.2, /48: 10.0.0.1 in bits 48-63 and 72-87 around the zero u octet.
        assertRefused("64:ff9b:1:a00:0:1::", by: "built-in 10.0.0.0/8", embedded: .nat64LocalUse48, policy: open)
        // The same prefix used as a /96.
        assertRefused("64:ff9b:1::ac10:501", by: "built-in 172.16.0.0/12", embedded: .nat64LocalUse96, policy: open)
    }

    func testEmbeddedExtractionFollowsTheRFCLayouts() {
        func forms(_ a: String) -> [String] { EmbeddedIPv4.all(in: IPAddress(a)!).map(\.description) }
        XCTAssertEqual(forms("64:ff9b::c000:221"), ["192.0.2.33 in NAT64 64:ff9b::/96"])
        // RFC 6052 §2.4's table, the /48 row with the local-use prefix: 192.0.2.33 = c0 00 02 21.
        XCTAssertEqual(forms("64:ff9b:1:c000:2:2100::"), ["192.0.2.33 in NAT64 64:ff9b:1::/48"])
        XCTAssertEqual(forms("64:ff9b:1::c000:221"), ["192.0.2.33 in NAT64 64:ff9b:1::/48 as /96"])
        XCTAssertEqual(forms("64:ff9b:1::"), ["0.0.0.0 in NAT64 64:ff9b:1::/48 as /96"])
        // Both layouts hold an address: both are judged.
        XCTAssertEqual(
            forms("64:ff9b:1:c000:2:2100:a00:1"),
            ["192.0.2.33 in NAT64 64:ff9b:1::/48", "10.0.0.1 in NAT64 64:ff9b:1::/48 as /96"])
        // RFC 4380 §4's example: server 65.54.227.120, client 192.0.2.45 behind port 40000.
        XCTAssertEqual(
            forms("2001:0:4136:e378:8000:63bf:3fff:fdd2"),
            ["65.54.227.120 in Teredo 2001::/32 server", "192.0.2.45 in Teredo 2001::/32 client"])
        XCTAssertEqual(forms("2002:c000:221::1"), ["192.0.2.33 in 6to4 2002::/16"])
        XCTAssertEqual(forms("::ffff:192.0.2.33"), ["192.0.2.33 in IPv4-mapped ::ffff:0:0/96"])
        XCTAssertEqual(forms("::192.0.2.33"), ["192.0.2.33 in IPv4-compatible ::/96"])
        XCTAssertEqual(forms("::"), [])
        XCTAssertEqual(forms("::1"), [])
        XCTAssertEqual(forms("2001:db8::1"), [])
        XCTAssertEqual(forms("192.0.2.33"), [])
    }

    // MARK: - own addresses

    func testOwnAddressesAreRefusedInEveryFormEvenWhenAllowed() {
        let open = DestinationPolicy(allowDestinations: [IPPrefix("0.0.0.0/0")!, IPPrefix("::/0")!])
        for policy in [DestinationPolicy(), open] {
            assertRefused("198.18.10.2", by: "own address", policy: policy)
            assertRefused("2001:db8:10::2", by: "own address", policy: policy)
            assertRefused("::ffff:198.18.10.2", by: "own address", embedded: .ipv4Mapped, policy: policy)
            assertRefused("64:ff9b::c612:a02", by: "own address", embedded: .nat64, policy: policy)
            assertRefused("2002:c612:a02::1", by: "own address", embedded: .sixToFour, policy: policy)
            assertRefused("127.0.0.1", by: "built-in 127.0.0.0/8", policy: policy)
            assertRefused("::1", by: "built-in ::1/128", policy: policy)
            assertRefused("64:ff9b::7f00:1", by: "built-in 127.0.0.0/8", embedded: .nat64, policy: policy)
        }
        assertAllowed("198.18.10.3")
    }

    // MARK: - deny_dest and allow_dest

    func testAllowDestOpensABuiltInRangeButNotTheMetadataHostsInIt() {
        let policy = DestinationPolicy(
            allowDestinations: [IPPrefix("172.16.5.0/24")!, IPPrefix("169.254.0.0/16")!, IPPrefix("fd00:5::/64")!])
        assertAllowed("172.16.5.1", policy: policy)
        assertAllowed("64:ff9b::172.16.5.1", policy: policy)
        assertAllowed("fd00:5::1", policy: policy)
        assertAllowed("169.254.1.1", policy: policy)
        assertRefused("172.16.6.1", by: "built-in 172.16.0.0/12", policy: policy)
        assertRefused("169.254.169.254", by: "built-in 169.254.169.254/32", policy: policy)
        // A host entry opens the metadata address: an operator who writes it means it.
        assertAllowed("169.254.169.254", policy: DestinationPolicy(allowDestinations: [IPPrefix("169.254.169.254")!]))
    }

    func testTheMostSpecificEntryDecidesAndDenyWinsATie() {
        let policy = DestinationPolicy(
            denyDestinations: [IPPrefix("198.18.0.0/15")!, IPPrefix("10.1.2.0/24")!, IPPrefix("10.9.0.0/16")!],
            allowDestinations: [IPPrefix("198.18.20.0/24")!, IPPrefix("10.0.0.0/8")!, IPPrefix("10.9.0.0/16")!])
        assertRefused("198.18.21.2", by: "deny_dest 198.18.0.0/15", policy: policy)
        assertAllowed("198.18.20.2", policy: policy)
        assertAllowed("10.3.3.3", policy: policy)
        assertRefused("10.1.2.3", by: "deny_dest 10.1.2.0/24", policy: policy)
        assertRefused("10.9.1.1", by: "deny_dest 10.9.0.0/16", policy: policy)
    }

    func testMappedPrefixesInTheConfigurationMatchIPv4() {
        let policy = DestinationPolicy(
            denyDestinations: [IPPrefix("::ffff:198.18.21.0/120")!],
            allowDestinations: [IPPrefix("::ffff:172.16.5.1/128")!])
        XCTAssertEqual(policy.denyDestinations.map(\.description), ["198.18.21.0/24"])
        XCTAssertEqual(policy.allowDestinations.map(\.description), ["172.16.5.1/32"])
        assertRefused("198.18.21.2", by: "deny_dest 198.18.21.0/24", policy: policy)
        assertRefused("::ffff:198.18.21.2", by: "deny_dest 198.18.21.0/24", embedded: .ipv4Mapped, policy: policy)
        assertAllowed("172.16.5.1", policy: policy)
        XCTAssertEqual(IPPrefix("::ffff:0:0/96")!.unmappingIPv4.description, "0.0.0.0/0")
        XCTAssertEqual(IPPrefix("::ffff:0:0/95")!.unmappingIPv4.description, "::ffff:0.0.0.0/95")
        XCTAssertEqual(IPPrefix("2001:db8::/32")!.unmappingIPv4.description, "2001:db8::/32")
    }

    // MARK: - ports

    func testPortPolicy() {
        let deny = DestinationPolicy(denyPorts: [PortRange("25")!, PortRange("8000-8080")!])
        assertRefused("198.18.20.2", by: "deny_port 25", policy: deny, port: 25)
        assertRefused("198.18.20.2", by: "deny_port 8000-8080", policy: deny, port: 8000)
        assertRefused("198.18.20.2", by: "deny_port 8000-8080", policy: deny, port: 8080)
        assertAllowed("198.18.20.2", policy: deny, port: 8081)
        assertAllowed("198.18.20.2", policy: deny, port: 7999)
        let allow = DestinationPolicy(
            denyPorts: [PortRange("444")!], allowPorts: [PortRange("80")!, PortRange("443-444")!])
        assertAllowed("198.18.20.2", policy: allow, port: 80)
        assertAllowed("198.18.20.2", policy: allow, port: 443)
        assertRefused("198.18.20.2", by: "deny_port 444", policy: allow, port: 444)
        assertRefused("198.18.20.2", by: "not in allow_port", policy: allow, port: 8080)
        assertRefused("198.18.20.2", by: "port 0", port: 0)
        // The address is judged first: a denied address names its range, not the port.
        assertRefused("10.0.0.1", by: "built-in 10.0.0.0/8", policy: allow, port: 8080)
    }

    func testPortRangeText() {
        XCTAssertEqual(PortRange("8000-8080")?.description, "8000-8080")
        XCTAssertEqual(PortRange("25")?.description, "25")
        XCTAssertEqual(PortRange("25-25")?.description, "25")
        for bad in ["0", "8080-8000", "65536", "1-", "-1", "a", "", "+80", " 80", "80-90-100", "0-10"] {
            XCTAssertNil(PortRange(bad), bad)
        }
    }

    func testRefusalsSayWhatAndWhy() {
        XCTAssertEqual(
            refusal(DestinationPolicy(), "64:ff9b::ac10:501")?.description,
            "64:ff9b::ac10:501 embeds 172.16.5.1 (NAT64 64:ff9b::/96), refused by built-in 172.16.0.0/12 "
                + "(private, RFC 1918)")
        XCTAssertEqual(
            refusal(DestinationPolicy(allowDestinations: [IPPrefix("0.0.0.0/0")!]), "198.18.10.2")?.description,
            "198.18.10.2 refused by the concentrator's own address (allow_dest cannot open it)")
        XCTAssertEqual(
            refusal(DestinationPolicy(allowPorts: [PortRange("443")!]), "198.18.20.2", port: 80)?.description,
            "198.18.20.2 refused by port 80 not in allow_port")
    }

    // MARK: - configuration

    func testConfigurationReadsTheLists() throws {
        let base = "config concentrator 'main'\n\toption psk_file '/k'\n"
        var reader = BraidConfigReader(
            package: try UCIParser.parse(
                base + "\tlist allow_dest '::ffff:172.16.5.0/120'\n\tlist deny_port '25'\n"
                    + "\tlist deny_port '8000-8080'\n\tlist allow_port '443'\n", file: "braid.conf"))
        let good = try reader.concentrator()
        XCTAssertEqual(good.allowDestinations.map(\.description), ["172.16.5.0/24"])
        XCTAssertEqual(good.denyPorts.map(\.description), ["25", "8000-8080"])
        XCTAssertEqual(good.allowPorts.map(\.description), ["443"])
        let policy = DestinationPolicy(good)
        assertAllowed("172.16.5.1", policy: policy)
        assertRefused("198.18.20.2", by: "not in allow_port", policy: policy, port: 80)
    }
}
