import XCTest

@testable import BraidConfig

final class UCIDocumentTests: XCTestCase {
    /// Names OpenWrt's uci gives anonymous sections on real systems: counter, then type hash.
    func testGeneratedNamesMatchUci() throws {
        let dhcp = try UCIDocument.parse(
            "\nconfig dnsmasq\n\toption domainneeded '1'\n\nconfig dhcp 'lan'\n", package: "dhcp")
        XCTAssertEqual(dhcp.sections.map(\.name), ["cfg01411c", "lan"])
        let network = try UCIDocument.parse(
            "config interface 'loopback'\nconfig globals 'globals'\nconfig device\n", package: "network")
        XCTAssertEqual(network.sections[2].name, "cfg030f15")
        XCTAssertEqual(UCIDocument.generatedName(counter: 1, type: "system"), "cfg01e48a")
    }

    /// Whatever the text, parsing and writing back without a change gives the same bytes.
    func testUntouchedTextIsWrittenBackByteForByte() throws {
        let texts = [
            "",
            "# only a comment",
            "package braid\n\nconfig a 'b'\n\toption c 'd'",
            "\nconfig gateway 'main'\n\toption server \"198.18.10.2\"  # primary\n\n\n# end\n",
            "config a x; option b 'c'\nconfig a\n\tlist l 'one\ntwo'\n\toption e f\\\ng\n",
        ]
        for text in texts {
            XCTAssertEqual(try UCIDocument.parse(text, package: "p").render(), text)
        }
    }

    func testChangingOneOptionLeavesTheRestOfItsSectionAlone() throws {
        var doc = try UCIDocument.parse(
            "config uplink 'dsl'\n\t# the line\n\toption device \"pppoe-wan\"\n\toption role active # now\n",
            package: "braid")
        let path = try UCIPath.parse("braid.dsl.role=backup")
        XCTAssertTrue(try doc.set(doc.lookup(path), path))
        XCTAssertEqual(
            doc.render(), "config uplink 'dsl'\n\t# the line\n\toption device \"pppoe-wan\"\n\toption role 'backup'\n")
    }

    func testPathsAndReferences() throws {
        let doc = try UCIDocument.parse("config a 'x'\nconfig b\nconfig a\nconfig a 'y'\n", package: "p")
        XCTAssertEqual(try doc.lookup(UCIPath.parse("p.@a[1]")).section, "cfg03b606")
        XCTAssertEqual(try doc.lookup(UCIPath.parse("p.@a[-1]")).section, "y")
        XCTAssertEqual(try doc.lookup(UCIPath.parse("p.@[1]")).sectionIndex, 1)
        XCTAssertFalse(try doc.lookup(UCIPath.parse("p.@a[3]")).isComplete)
        XCTAssertThrowsError(try doc.lookup(UCIPath.parse("p.@a[1")))
        XCTAssertThrowsError(try UCIPath.parse("p.x.y.z"))
        XCTAssertThrowsError(try UCIPath.parse("p.x.bad-name"))
        XCTAssertEqual(try UCIPath.parse("p.x.y=a=b").value, "a=b")
    }

    /// Records are written quoted as uci writes them, and read back through uci's grammar, so values
    /// with spaces, quotes and line breaks survive; the older unquoted form still reads.
    func testDeltaLinesRoundTrip() {
        let lines = [
            "p.s.o='v w'", "+p.cfg01abcd='t'", "-p.s", "-p.s.o='2'", "@p.s='n'", "^p.s='3'", "|p.s.l='x'",
            "~p.s.l='x'", "p.s.o='it'\\''s\nsecond line'",
        ]
        let records = UCIDelta.records(lines.map { $0 + "\n" }.joined())
        XCTAssertEqual(records.map { $0?.line }, lines)
        XCTAssertEqual(records.last??.value, "it's\nsecond line")
        XCTAssertEqual(UCIDelta.records("p.s.o=v\np.s.o='v' w\n").map { $0?.value }, ["v", nil])
        XCTAssertNil(UCIDelta.parse("p.@s[0].o=v"))
        XCTAssertNil(UCIDelta.parse("@p.s=bad-name"))
        XCTAssertNil(UCIDelta.parse("|p.s=x"))
    }

    /// The daemons' reader uses the same parser; its errors name file, line and the value at fault.
    func testPackageReaderErrors() {
        func error(_ text: String) -> String {
            do {
                _ = try UCIParser.parse(text, file: "f")
                return ""
            } catch {
                return "\(error)"
            }
        }
        XCTAssertEqual(error("config a 'b'\n\tlist x 'y"), "f:2: unterminated quote")
        XCTAssertEqual(error("\n\nfrob x\n"), "f:3: unknown keyword (frob)")
        XCTAssertEqual(error("list x y\n"), "f:1: 'list' outside of a 'config' section")
        XCTAssertEqual(error("config a 'b-c'\n"), "f:1: invalid name (b-c)")
        XCTAssertEqual(error("config a 'b'\nconfig c 'b'\n"), "f:2: section declared again with another type")
    }
}
