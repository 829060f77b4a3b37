import BraidCore
import XCTest

@testable import BraidWire

final class ControlMessageTests: XCTestCase {
    static let grant = ControlMessage.SessionGrant(
        keyID: 0x0102_0304, key: Array(0..<32), lifetimeSeconds: 3600, notAfterMillis: 1_790_000_000_000)
    /// One of each message, with values that use every byte of their fields.
    static let samples: [ControlMessage] = [
        .hello(.init(protocolVersion: 1, software: "braid 0.1 (Linux)")),
        .hello(.init(protocolVersion: 255, software: "")),
        .sessionGrant(grant),
        .sessionGrant(
            .init(keyID: .max, key: Array(repeating: 0xff, count: 32), lifetimeSeconds: .max, notAfterMillis: .max)),
        .classInfo(
            .init(name: "büro-100", rateDownBitsPerSecond: 100_000_000, rateUpBitsPerSecond: 0, maxSessions: 4096)),
        .ping(.init(nonce: .max, timestampMillis: 1)),
        .pong(.init(nonce: 0, timestampMillis: .max)),
        .error(code: .notAuthorized, reason: "certificate 'gw-17' revoked"),
        .error(code: ControlErrorCode(rawValue: 0xbeef), reason: String(repeating: "x", count: 255)),
        .goodbye,
        .addresses([IPAddress("198.18.10.2")!, IPAddress("2001:db8:10::2")!]),
        .addresses([]),
        .operatorRules([]),
        .operatorRules(OperatorRulesCodecTests.rules),
    ]

    func testRoundTripOfEveryMessage() throws {
        for message in Self.samples {
            let frame = try message.encode()
            XCTAssertEqual(frame[0], ControlMessage.version)
            XCTAssertEqual(frame[1], message.type.rawValue)
            XCTAssertEqual(Int(frame[2]) << 8 | Int(frame[3]), frame.count - 4, "\(message)")
            XCTAssertEqual(try ControlMessage.decode(frame: frame), message)
            XCTAssertEqual(try ControlMessage.parse(frame + [1, 2]), .message(message, length: frame.count))
        }
    }

    func testGrantWireLayout() throws {
        let frame = try ControlMessage.sessionGrant(Self.grant).encode()
        XCTAssertEqual(Array(frame[0..<8]), [1, 2, 0, 48, 1, 2, 3, 4])
        XCTAssertEqual(Array(frame[8..<40]), Array(0..<32))
        XCTAssertEqual(Array(frame[40..<44]), [0, 0, 0x0e, 0x10])
        XCTAssertEqual(frame.count, 4 + 48)
    }

    /// A stream cut anywhere inside a frame waits for more; a frame whose length was shortened
    /// with it is refused as truncated, naming the field.
    func testEveryTruncationOfEveryMessageIsRefused() throws {
        for message in Self.samples {
            let frame = try message.encode()
            for cut in 0..<frame.count {
                let short = Array(frame[..<cut])
                XCTAssertEqual(try ControlMessage.parse(short), .incomplete(needed: cut < 4 ? 4 : frame.count))
                XCTAssertThrowsError(try ControlMessage.decode(frame: short)) { error in
                    XCTAssertEqual((error as? ControlError)?.code, .truncated, "\(message) cut at \(cut)")
                }
                guard cut >= 4 else { continue }
                // The same bytes with a length field that agrees: the payload itself is short.
                var relabelled = short
                relabelled[2] = UInt8((cut - 4) >> 8)
                relabelled[3] = UInt8((cut - 4) & 0xff)
                XCTAssertThrowsError(try ControlMessage.decode(frame: relabelled), "\(message) cut at \(cut)") {
                    error in
                    let code = (error as? ControlError)?.code
                    // Cutting a string shorter can leave a valid prefix followed by fields too short.
                    XCTAssertTrue(code == .truncated || code == .invalidValue, "\(message) cut at \(cut): \(error)")
                }
            }
        }
    }

    func testTrailingBytesInThePayloadAreRefused() throws {
        for message in Self.samples {
            var frame = try message.encode()
            frame.append(0)
            let length = frame.count - 4
            frame[2] = UInt8(length >> 8)
            frame[3] = UInt8(length & 0xff)
            XCTAssertThrowsError(try ControlMessage.decode(frame: frame)) { error in
                XCTAssertEqual((error as? ControlError)?.code, .trailingBytes, "\(message)")
            }
        }
        XCTAssertThrowsError(try ControlMessage.decode(frame: try ControlMessage.goodbye.encode() + [0])) { error in
            XCTAssertEqual((error as? ControlError)?.code, .trailingBytes)
        }
    }

    func testHeaderErrorsAreSpecificAndImmediate() {
        func code(_ bytes: [UInt8]) -> ControlErrorCode? {
            do {
                _ = try ControlMessage.parse(bytes)
                return nil
            } catch {
                return (error as? ControlError)?.code
            }
        }
        XCTAssertEqual(code([2, 7, 0, 0]), .unsupportedVersion)
        XCTAssertEqual(code([1, 0, 0, 0]), .unknownType)
        XCTAssertEqual(code([1, 99, 0, 0]), .unknownType)
        // Refused from the header alone: nothing waits for (or buffers) 64 KB that will not come.
        XCTAssertEqual(code([1, 6, 0xff, 0xff]), .frameTooLarge)
        XCTAssertEqual(code([1, 6, 0x04, 0x01]), .frameTooLarge)
        XCTAssertNil(code([1, 6, 0x04, 0x00]))
    }

    func testInvalidFieldsAreRefusedBothWays() throws {
        var zeroID = Self.grant
        zeroID.keyID = 0
        var shortKey = Self.grant
        shortKey.key = Array(0..<31)
        var noLifetime = Self.grant
        noLifetime.lifetimeSeconds = 0
        let bad: [ControlMessage] = [
            .sessionGrant(zeroID), .sessionGrant(shortKey), .sessionGrant(noLifetime),
            .classInfo(.init(name: "", rateDownBitsPerSecond: 0, rateUpBitsPerSecond: 0, maxSessions: 0)),
            .hello(.init(software: "braid\n2026-11-22 gateway: forged log line")),
            .error(code: .timeout, reason: "tab\there"),
            .error(code: .timeout, reason: "\u{85}next line"),
            .error(code: .timeout, reason: String(repeating: "é", count: 128)),
        ]
        for message in bad {
            XCTAssertThrowsError(try message.encode(), "\(message)") { error in
                XCTAssertEqual((error as? ControlError)?.code, .invalidValue)
            }
        }
        // The decoder refuses the same values when a peer sends them anyway.
        var frame = try ControlMessage.sessionGrant(Self.grant).encode()
        frame.replaceSubrange(4..<8, with: [0, 0, 0, 0])
        XCTAssertThrowsError(try ControlMessage.decode(frame: frame)) { error in
            XCTAssertEqual((error as? ControlError)?.code, .invalidValue)
            XCTAssertTrue("\(error)".contains("keyID 0"), "\(error)")
        }
        let newline: [UInt8] = [1, 1, 0, 4, 1, 2, 0x61, 0x0a]
        XCTAssertThrowsError(try ControlMessage.decode(frame: newline)) { error in
            XCTAssertEqual((error as? ControlError)?.code, .invalidValue)
            XCTAssertTrue("\(error)".contains("U+000A"), "\(error)")
        }
        let notUTF8: [UInt8] = [1, 1, 0, 4, 1, 2, 0xc3, 0x28]
        XCTAssertThrowsError(try ControlMessage.decode(frame: notUTF8)) { error in
            XCTAssertEqual((error as? ControlError)?.code, .invalidValue)
            XCTAssertTrue("\(error)".contains("not UTF-8"), "\(error)")
        }
    }

    func testErrorFrameSanitisesAndCutsTheReason() throws {
        let long = "bad value \"\u{1b}[31m\"" + String(repeating: "ü", count: 200)
        let frame = ControlMessage.errorFrame(.invalidValue, long)
        guard case .error(let code, let reason) = try ControlMessage.decode(frame: frame) else { return XCTFail() }
        XCTAssertEqual(code, .invalidValue)
        XCTAssertTrue(reason.hasPrefix("bad value \" [31m\"ü"), reason)
        XCTAssertLessThanOrEqual(reason.utf8.count, 255)
        XCTAssertGreaterThan(reason.utf8.count, 250)
    }

    func testDecoderSplitsAStreamFedByteByByte() throws {
        let stream = try Self.samples.flatMap { try $0.encode() }
        var decoder = ControlFrameDecoder()
        var out: [ControlMessage] = []
        for byte in stream {
            decoder.append([byte])
            while let message = try decoder.next() { out.append(message) }
            XCTAssertLessThanOrEqual(decoder.bufferedCount, 4 + ControlMessage.maximumPayloadSize)
        }
        XCTAssertEqual(out, Self.samples)
        XCTAssertEqual(decoder.bufferedCount, 0)
    }

    func testDecoderStaysFailedAfterAnUnreadableFrame() throws {
        var decoder = ControlFrameDecoder()
        decoder.append([1, 99, 0, 0] + (try ControlMessage.goodbye.encode()))
        XCTAssertThrowsError(try decoder.next())
        decoder.append(try ControlMessage.goodbye.encode())
        XCTAssertThrowsError(try decoder.next()) { error in
            XCTAssertEqual((error as? ControlError)?.code, .unknownType)
        }
        XCTAssertEqual(decoder.bufferedCount, 0)
    }

    /// Count, then family and address bytes: what a gateway of another implementation must read.
    func testAddressesWireLayoutAndLimits() throws {
        let frame = try ControlMessage.addresses([IPAddress("198.18.10.2")!, IPAddress("2001:db8::1")!]).encode()
        XCTAssertEqual(
            frame,
            [1, 8, 0, 23, 2, 4, 198, 18, 10, 2, 6, 0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1])
        // A family that is neither 4 nor 6 names itself.
        XCTAssertThrowsError(try ControlMessage.decode(frame: [1, 8, 0, 6, 1, 5, 1, 2, 3, 4])) { error in
            XCTAssertEqual((error as? ControlError)?.code, .invalidValue)
            XCTAssertTrue("\(error)".contains("family[0] 5"), "\(error)")
        }
        XCTAssertThrowsError(try ControlMessage.decode(frame: [1, 8, 0, 1, 17])) { error in
            XCTAssertEqual((error as? ControlError)?.code, .invalidValue)
        }
        let many = [IPAddress](repeating: IPAddress("2001:db8::1")!, count: ControlMessage.maximumAddresses + 1)
        XCTAssertThrowsError(try ControlMessage.addresses(many).encode())
    }
}
