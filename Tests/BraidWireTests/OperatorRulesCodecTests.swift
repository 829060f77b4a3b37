import BraidCore
import XCTest

@testable import BraidWire

/// The `operatorRules` message: a bounded set of rules a concentrator pushes to a class's gateways.
/// A hostile or broken concentrator must not crash or stall a gateway: every malformed or oversize
/// frame is refused with an error naming the field, from the header when it is too long.
final class OperatorRulesCodecTests: XCTestCase {
    typealias Rule = ControlMessage.OperatorRule

    static let rules: [Rule] = [
        Rule(
            name: "bank_direct", action: .direct,
            destinations: [IPPrefix("198.51.100.0/24")!, IPPrefix("2001:db8:5::/48")!],
            destinationPorts: [PortRange("443")!, PortRange("8000-8080")!]),
        Rule(
            name: "@rule[3]", action: .block, proto: .any, sources: [IPPrefix("198.18.1.7")!],
            sourceMACs: [MACAddress("02:00:5e:10:00:01")!]),
        Rule(name: "video", action: .bond, proto: .any, destinationPorts: [PortRange("1-65535")!]),
    ]

    /// A rule of `bytes` encoded bytes, near the largest one.
    func bigRule(_ i: Int) -> Rule {
        Rule(
            name: "r\(i)", action: .direct,
            destinations: (0..<40).map { IPPrefix("2001:db8:\(i):\($0)::/64")! })
    }

    func testRoundTripAndSizeFormula() throws {
        let frame = try ControlMessage.operatorRules(Self.rules).encode()
        XCTAssertEqual(frame[1], 9)
        let expected = OperatorRuleLimits.payloadHeaderSize + Self.rules.map(\.encodedSize).reduce(0, +)
        XCTAssertEqual(frame.count - ControlMessage.headerSize, expected)
        XCTAssertEqual(try ControlMessage.decode(frame: frame), .operatorRules(Self.rules))
    }

    func testWireLayoutOfOneRule() throws {
        let rule = Rule(
            name: "a", action: .block, proto: .udp, destinations: [IPPrefix("198.18.20.0/24")!],
            destinationPorts: [PortRange("53")!])
        let frame = try ControlMessage.operatorRules([rule]).encode()
        XCTAssertEqual(
            frame,
            [1, 9, 0, 19, 1, 1, 0x61, 3, 2, 1, 4, 24, 198, 18, 20, 0, 0, 1, 0, 53, 0, 53, 0])
    }

    func testTooManyRulesAreRefusedBothWays() throws {
        let many = (0...OperatorRuleLimits.maximumRules).map { Rule(name: "r\($0)", action: .direct) }
        XCTAssertThrowsError(try ControlMessage.operatorRules(many).encode()) { error in
            XCTAssertTrue("\(error)".contains("65 rules exceed 64"), "\(error)")
        }
        // A peer that sends them anyway: the count byte says 65.
        var frame = try ControlMessage.operatorRules(Array(many.prefix(64))).encode()
        frame[4] = 65
        frame += [1, 0x7a, 2, 1, 0, 0, 0, 0]
        let length = frame.count - 4
        frame[2] = UInt8(length >> 8)
        frame[3] = UInt8(length & 0xff)
        XCTAssertThrowsError(try ControlMessage.decode(frame: frame)) { error in
            XCTAssertEqual((error as? ControlError)?.code, .invalidValue)
            XCTAssertTrue("\(error)".contains("count 65 exceeds 64"), "\(error)")
        }
    }

    func testAPayloadBeyondTheBoundIsRefusedFromTheHeader() throws {
        // 64 rules of 40 IPv6 prefixes each: about 47 KB, more than a gateway takes.
        let big = (0..<64).map(bigRule)
        XCTAssertThrowsError(try ControlMessage.operatorRules(big).encode()) { error in
            XCTAssertTrue("\(error)".contains("exceed 16384"), "\(error)")
        }
        XCTAssertNoThrow(try ControlMessage.operatorRules(Array(big.prefix(20))).encode())
        // The header alone refuses a longer frame: nothing is buffered waiting for it.
        var decoder = ControlFrameDecoder()
        decoder.append([1, 9, 0x40, 0x01])
        XCTAssertThrowsError(try decoder.next()) { error in
            XCTAssertEqual((error as? ControlError)?.code, .frameTooLarge)
            XCTAssertTrue("\(error)".contains("16385 bytes exceeds 16384"), "\(error)")
        }
        XCTAssertEqual(decoder.bufferedCount, 0)
        // Other messages keep their own, smaller bound.
        XCTAssertThrowsError(try ControlMessage.parse([1, 3, 0x04, 0x01])) { error in
            XCTAssertEqual((error as? ControlError)?.code, .frameTooLarge)
        }
    }

    func testBadFieldsAreRefusedNamingThem() throws {
        let good = try ControlMessage.operatorRules([Rule(name: "a", action: .direct)]).encode()
        func refused(_ edit: (inout [UInt8]) -> Void, _ words: String) {
            var frame = good
            edit(&frame)
            XCTAssertThrowsError(try ControlMessage.decode(frame: frame), words) { error in
                XCTAssertTrue("\(error)".contains(words), "\(error) should name \(words)")
            }
        }
        // Layout: header (0-3), count (4), name (5: length 1, 6: 'a'), action (7), proto (8),
        // dest count (9), src count (10), dest_port count (11), src_mac count (12).
        refused({ $0[7] = 0 }, "action 0")
        refused({ $0[7] = 4 }, "action 4")
        refused({ $0[8] = 9 }, "proto 9")
        refused({ $0[6] = 0x22 }, "name is not a section name")  // '"' would end an nft comment
        refused({ $0[6] = 0x0a }, "control character")
        refused({ $0[9] = 1 }, "dest[0].family")
        refused(
            {
                $0[7] = 1
                $0[8] = 2
            }, "bond with proto udp")
        // A prefix longer than its family allows, and an inverted port range.
        var prefix = try ControlMessage.operatorRules([
            Rule(name: "a", action: .direct, destinations: [IPPrefix("198.18.0.0/15")!])
        ]).encode()
        prefix[11] = 33
        XCTAssertThrowsError(try ControlMessage.decode(frame: prefix)) {
            XCTAssertTrue("\($0)".contains("/33"), "\($0)")
        }
        var ports = try ControlMessage.operatorRules([
            Rule(name: "a", action: .direct, destinationPorts: [PortRange("80-90")!])
        ]).encode()
        ports.replaceSubrange(12..<16, with: [0, 90, 0, 80])
        XCTAssertThrowsError(try ControlMessage.decode(frame: ports)) {
            XCTAssertTrue("\($0)".contains("90-80"), "\($0)")
        }
    }

    /// Garbage of every length, and every byte of valid frames flipped: never a crash, never a
    /// frame accepted that does not encode back to itself.
    func testGarbageNeverCrashesTheDecoder() throws {
        var random = SystemRandomNumberGenerator()
        for _ in 0..<5000 {
            let length = Int.random(in: 0..<300, using: &random)
            var frame: [UInt8] = [1, 9, UInt8(length >> 8), UInt8(length & 0xff)]
            frame += (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            if let message = try? ControlMessage.decode(frame: frame) {
                XCTAssertEqual(try message.encode(), frame)
            }
        }
        let valid = try ControlMessage.operatorRules(Self.rules).encode()
        for i in 4..<valid.count {
            for value: UInt8 in [0, 1, 3, 4, 6, 0x20, 0x7f, 0xff] {
                var frame = valid
                frame[i] = value
                if let message = try? ControlMessage.decode(frame: frame) {
                    XCTAssertEqual(try message.encode(), frame, "byte \(i) = \(value)")
                }
            }
        }
    }

    /// Only a gateway whose hello says protocol 3 gets rules (an older one would close the channel
    /// on an unknown message); a change is pushed once, an unchanged set not again.
    func testRulesArePushedToGatewaysThatUnderstandThem() throws {
        let timers = ControlTimers(pingIntervalMillis: 10_000, deadAfterMillis: 30_000, handshakeTimeoutMillis: 5_000)
        var config = ConcentratorControlSession.Configuration(timers: timers)
        config.operatorRules = Self.rules
        var l = ControlLink(gateway: .init(software: "braid-test", timers: timers), concentrator: config)
        l.connect()
        XCTAssertEqual(l.gatewayRules, [Self.rules])
        l.concentratorDo(l.concentrator.updateOperatorRules(Self.rules))
        l.pump()
        XCTAssertEqual(l.gatewayRules.count, 1, "an unchanged set is not sent again")
        l.concentratorDo(l.concentrator.updateOperatorRules([]))
        l.pump()
        XCTAssertEqual(l.gatewayRules, [Self.rules, []])
        XCTAssertNil(l.gatewayClosed)

        for version: UInt8 in [1, 2] {
            var c = ConcentratorControlSession(configuration: config, keys: CountingKeySource())
            _ = c.start(nowMillis: 0)
            let hello = try ControlMessage.hello(.init(protocolVersion: version, software: "old")).encode()
            let sent = c.receive(hello, nowMillis: 1) + c.updateOperatorRules([])
            for case .send(let frame) in sent {
                XCTAssertNotEqual(frame[1], ControlMessage.MessageType.operatorRules.rawValue, "version \(version)")
            }
        }
    }

    func testRulesBeforeAGrantAreRefused() throws {
        var gateway = GatewayControlSession(configuration: .init(software: "x"))
        _ = gateway.start(nowMillis: 0)
        let actions = gateway.receive(try ControlMessage.operatorRules([]).encode(), nowMillis: 1)
        XCTAssertEqual(
            actions.last,
            .close(.protocolError(ControlError(.unexpectedMessage, "operatorRules before the first sessionGrant"))))
    }
}
