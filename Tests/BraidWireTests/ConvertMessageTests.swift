import BraidCore
import XCTest

@testable import BraidWire

final class ConvertMessageTests: XCTestCase {
    let v4 = Endpoint(address: IPAddress("198.18.20.2")!, port: 8080)
    let v6 = Endpoint(address: IPAddress("2001:db8:20::2")!, port: 443)

    func roundTrip(_ tlvs: [ConvertTLV], file: StaticString = #filePath, line: UInt = #line) throws {
        let bytes = try ConvertMessage(tlvs).encode()
        XCTAssertEqual(bytes.count % 4, 0, file: file, line: line)
        XCTAssertEqual(Int(bytes[1]) * 4, bytes.count, file: file, line: line)
        XCTAssertEqual(
            try ConvertMessage.parse(bytes + [9, 9, 9]), .message(ConvertMessage(tlvs), length: bytes.count),
            file: file, line: line)
    }

    func testRoundTrips() throws {
        try roundTrip([])
        try roundTrip([.info])
        try roundTrip([.connect(v4, tcpOptions: [])])
        try roundTrip([.connect(v6, tcpOptions: [])])
        try roundTrip([.connect(v6, tcpOptions: [1, 1, 1, 1])])
        try roundTrip([.supportedTCPExtensions([30])])
        try roundTrip([.supportedTCPExtensions([2, 30, 34])])
        try roundTrip([.error(.notAuthorized, value: [0])])
        try roundTrip([.error(.connectionReset, value: [0])])
        try roundTrip([.cookie([1, 2, 3, 4])])  // opaque values are word-aligned by their sender
        try roundTrip([.unknown(type: 200, value: [1, 2])])
        let auth = ConvertAuthentication(
            keyID: 7, timestampMillis: 1_790_000_000_123, nonce: Array(0..<16), mac: Array(100..<132))
        try roundTrip([.connect(v4, tcpOptions: []), .info, .authentication(auth)])
    }

    func testConnectTLVCarriesIPv4Mapped() throws {
        let bytes = try ConvertMessage([.connect(v4, tcpOptions: [])]).encode()
        // Header (4) + type 10, length 5 words, port 8080, ::ffff:198.18.20.2.
        XCTAssertEqual(bytes, [1, 6, 0, 0, 10, 5, 0x1f, 0x90] + [UInt8](repeating: 0, count: 10) + [0xff, 0xff, 198, 18, 20, 2])
    }

    func testIncomplete() throws {
        let bytes = try ConvertMessage([.connect(v6, tcpOptions: [])]).encode()
        XCTAssertEqual(try ConvertMessage.parse([]), .incomplete(needed: 4))
        XCTAssertEqual(try ConvertMessage.parse(bytes.prefix(3)), .incomplete(needed: 4))
        for n in 4..<bytes.count {
            XCTAssertEqual(try ConvertMessage.parse(bytes.prefix(n)), .incomplete(needed: bytes.count), "prefix \(n)")
        }
    }

    func assertError(_ bytes: [UInt8], _ code: ConvertErrorCode, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try ConvertMessage.parse(bytes), file: file, line: line) { error in
            XCTAssertEqual((error as? ConvertError)?.code, code, "\(error)", file: file, line: line)
        }
    }

    func testMalformed() {
        assertError([2, 1, 0, 0], .unsupportedVersion)
        assertError([0x47, 0x45, 0x54, 0x20], .unsupportedVersion)  // "GET "
        assertError([1, 0, 0, 0], .malformedMessage)  // total length 0
        assertError([1, 2, 0, 0, 1, 0, 0, 0], .malformedMessage)  // TLV length 0
        assertError([1, 2, 0, 0, 1, 2, 0, 0], .malformedMessage)  // TLV overruns the message
        assertError([1, 3, 0, 0, 10, 2, 0, 80, 0, 0, 0, 0], .malformedMessage)  // Connect TLV too short
        var zeroPort = [UInt8](repeating: 0, count: 24)
        zeroPort[0] = 1; zeroPort[1] = 6; zeroPort[4] = 10; zeroPort[5] = 5
        assertError(zeroPort, .malformedMessage)
        assertError([1, 3, 0, 0, 192, 2, 0, 0, 0, 0, 0, 0], .malformedMessage)  // auth TLV of wrong size
    }

    func testEveryTruncationIsIncompleteAndNeverAccepted() throws {
        let auth = ConvertAuthenticator(key: Array(repeating: 7, count: 32))
        let request = try ConvertClientHandshake.request(to: v4, authenticator: auth, nowMillis: 1000, nonce: Array(repeating: 1, count: 16))
        for n in 0..<request.count {
            if case .message = try ConvertMessage.parse(request.prefix(n)) { XCTFail("accepted a \(n)-byte prefix") }
        }
    }
}
