import XCTest

@testable import BraidStatus

final class JSONTextTests: XCTestCase {
    struct Inner: Codable, Equatable {
        var a: Int
        var b: [String]
    }

    struct Outer: Codable, Equatable {
        var name: String
        var count: UInt64
        var ratio: Double
        var flag: Bool
        var missing: String?
        var inner: Inner
        var list: [Inner]
        var nested: [[Int]]
    }

    func testStringsAreEscaped() throws {
        let text = try JSONText.encode(["q\"b\\s/\n\r\t\u{08}\u{0C}\u{01}\u{1F}é🙂"])
        XCTAssertEqual(text, #"["q\"b\\s/\n\r\t\b\f\u0001\u001fé🙂"]"#)
        XCTAssertEqual(try JSONText.decode([String].self, from: text), ["q\"b\\s/\n\r\t\u{08}\u{0C}\u{01}\u{1F}é🙂"])
    }

    func testNumbersKeepTheirKind() throws {
        XCTAssertEqual(try JSONText.encode([UInt64.max]), "[18446744073709551615]")
        XCTAssertEqual(try JSONText.encode([Int64.min]), "[-9223372036854775808]")
        XCTAssertEqual(try JSONText.encode([0.5, 1e-05, 1e20, 3]), "[0.5,1e-05,1e+20,3.0]")
        // JSON has no NaN or infinity: null, as JSON.stringify writes them.
        XCTAssertEqual(try JSONText.encode([Double.nan, -Double.infinity]), "[null,null]")
        XCTAssertEqual(try JSONText.decode([UInt64].self, from: "[18446744073709551615]"), [UInt64.max])
        XCTAssertEqual(try JSONText.decode([Double].self, from: "[1e-05, 2, -0.25E+2]"), [1e-05, 2, -25])
        XCTAssertEqual(try JSONText.decode([Int].self, from: "[3.0]"), [3])
        XCTAssertThrowsError(try JSONText.decode([Int].self, from: "[3.5]"))
        XCTAssertThrowsError(try JSONText.decode([UInt8].self, from: "[256]"))
    }

    func testNullsAndNesting() throws {
        let value = Outer(
            name: "x", count: 7, ratio: 0.25, flag: true, missing: nil, inner: Inner(a: -1, b: ["p", "q"]),
            list: [Inner(a: 1, b: []), Inner(a: 2, b: ["r"])], nested: [[1, 2], [], [3]])
        let text = try JSONText.encode(value)
        // Synthesized Codable leaves a nil Optional out (encodeIfPresent); fields in declaration order.
        XCTAssertEqual(
            text,
            #"{"name":"x","count":7,"ratio":0.25,"flag":true,"inner":{"a":-1,"b":["p","q"]},"#
                + #""list":[{"a":1,"b":[]},{"a":2,"b":["r"]}],"nested":[[1,2],[],[3]]}"#)
        XCTAssertEqual(try JSONText.decode(Outer.self, from: text), value)
        // An explicit null reads as nil too, and unknown members are ignored.
        let withNull =
            #"{"name":"x","count":7,"ratio":0.25,"flag":true,"missing":null,"extra":{"z":[1]},"#
            + #""inner":{"a":-1,"b":["p","q"]},"list":[{"a":1,"b":[]},{"a":2,"b":["r"]}],"nested":[[1,2],[],[3]]}"#
        XCTAssertEqual(try JSONText.decode(Outer.self, from: withNull), value)
        XCTAssertEqual(try JSONText.encode([String?.none, "a"]), #"[null,"a"]"#)
    }

    func testParserRefusesWhatIsNotJSON() {
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "01", "1.", "\"\u{01}\"", "tru", "[1] 2", "\"\\x\"", "\"\\ud800\""] {
            XCTAssertThrowsError(try JSONText.parse(bad), bad)
        }
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        XCTAssertThrowsError(try JSONText.parse(deep)) { error in
            XCTAssertTrue("\(error)".contains("nested deeper"), "\(error)")
        }
        XCTAssertEqual(try JSONText.parse(" {\"a\" : [true, false, null, \"\\u00e9\\ud83d\\ude42\"]} "),
            .object([JSONMember("a", .array([.bool(true), .bool(false), .null, .string("é🙂")]))]))
    }

    func testDecodingErrorsNameThePath() {
        XCTAssertThrowsError(try JSONText.decode(Outer.self, from: #"{"name":"x"}"#)) { error in
            XCTAssertTrue("\(error)".contains("count"), "\(error)")
        }
    }
}
