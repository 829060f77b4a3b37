import XCTest

@testable import BraidCore

/// The JSON reader `braid status` uses: what the gateway writes, and what it must refuse.
final class JSONNodeTests: XCTestCase {
    func testStatusShapedDocument() throws {
        let text = """
            {"concentrator":"198.18.10.2:4800","sessions":{"active":1,"total":2},
             "uplinks":[{"name":"dsl","since":1700000000.125,"addresses":["198.18.1.2","2001:db8::2"],
             "rtt_ms":21.25,"loss":0.09,"mptcp":"failing: reset","ok":true,"gw":null}]}
            """
        let root = try XCTUnwrap(JSONNode.parse(text))
        XCTAssertEqual(root["concentrator"]?.string, "198.18.10.2:4800")
        XCTAssertEqual(root["sessions"]?["total"]?.text, "2")
        let uplink = try XCTUnwrap(root["uplinks"]?.array?.first)
        XCTAssertEqual(uplink["since"]?.number, 1_700_000_000.125)
        XCTAssertEqual(uplink["addresses"]?.text, "198.18.1.2,2001:db8::2")
        XCTAssertEqual(uplink["rtt_ms"]?.number, 21.25)
        XCTAssertEqual(uplink["ok"], .bool(true))
        XCTAssertEqual(uplink["gw"], .null)
    }

    func testEscapes() {
        XCTAssertEqual(JSONNode.parse(#""a\"b\\c\/\n\t\u00e9\ud83d\ude00""#), .string("a\"b\\c/\n\té😀"))
        XCTAssertEqual(JSONNode.parse(#""é""#), .string("é"))
    }

    func testNumbers() {
        XCTAssertEqual(JSONNode.parse("-0.5e2"), .number(-50))
        XCTAssertEqual(JSONNode.parse(" 0 "), .number(0))
        for bad in ["01", "1.", ".5", "-", "1e", "+1", "0x10"] { XCTAssertNil(JSONNode.parse(bad), bad) }
    }

    func testMalformedRefused() {
        for bad in [
            "", "{", "[1,]", "{\"a\"}", "{\"a\":1,}", "[1] [2]", "\"open", "\"\u{01}\"", #""\ud83d""#, "nul", "{a:1}",
            #""\x""#,
        ] {
            XCTAssertNil(JSONNode.parse(bad), bad)
        }
    }

    func testDepthIsBounded() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        XCTAssertNil(JSONNode.parse(deep))
        let fine = String(repeating: "[", count: 10) + String(repeating: "]", count: 10)
        XCTAssertNotNil(JSONNode.parse(fine))
    }
}
