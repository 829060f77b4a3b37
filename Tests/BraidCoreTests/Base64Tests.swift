import XCTest

@testable import BraidCore

/// The key codec against RFC 4648 §10's test vectors and the spellings it must refuse.
final class Base64Tests: XCTestCase {
    let vectors: [(String, String)] = [
        ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ]

    func testRFC4648Vectors() {
        for (plain, encoded) in vectors {
            XCTAssertEqual(Base64.encode(Array(plain.utf8)), encoded)
            XCTAssertEqual(Base64.decode(encoded), Array(plain.utf8), encoded)
        }
    }

    func testEveryByteRoundTrips() {
        let all = (0...255).map { UInt8($0) }
        for n in [1, 2, 3, 31, 32, 33, 256] {
            let bytes = Array(all.prefix(n).reversed())
            XCTAssertEqual(Base64.decode(Base64.encode(bytes)), bytes)
        }
        // A key as `braid genkey` prints it: 32 bytes are 44 characters with one pad.
        XCTAssertEqual(Base64.encode([UInt8](repeating: 0xFF, count: 32)).count, 44)
    }

    func testMalformedRefused() {
        for bad in ["Zg=", "Zg", "Z===", "Zm9v!A==", "Zg==Zg==", "Zh==", "Zm9=", "Zm 9v", "=Zm9"] {
            XCTAssertNil(Base64.decode(bad), bad)
        }
    }
}
