import BraidCore
import XCTest

@testable import BraidWire

/// What a captured request is worth elsewhere: the MAC names the concentrator it was made for,
/// and a concentrator refuses requests stamped before it started (its replay cache is new).
final class ConvertBindingTests: XCTestCase {
    let key = [UInt8](repeating: 0x42, count: 32)
    let destination = Endpoint(address: IPAddress("198.18.20.2")!, port: 8080)
    let now: UInt64 = 1_790_000_000_000

    func sealed(for identity: String, at time: UInt64? = nil, nonce: UInt8 = 1) throws -> [UInt8] {
        try ConvertClientHandshake.request(
            to: destination, authenticator: ConvertAuthenticator(key: key, identity: identity),
            nowMillis: time ?? now, nonce: Array(repeating: nonce, count: 16))
    }

    func serve(
        _ bytes: [UInt8], identities: [String], notBefore: UInt64 = 0, replay: inout ReplayGuard
    ) -> (ConvertServerHandshake.Action, ConvertRefusal?) {
        var server = ConvertServerHandshake(
            lookup: { [key] id in
                guard id == 0 else { throw ConvertError(.notAuthorized, "unknown key id \(id)") }
                return key
            }, identities: identities, notBeforeMillis: notBefore)
        let action = server.feed(bytes, nowMillis: now, replay: &replay)
        return (action, server.refusal)
    }

    func testRequestForOneConcentratorFailsAtAnotherSharingTheKey() throws {
        let forA = try sealed(for: "conc-a.example.net")
        var replayA = ReplayGuard()
        var replayB = ReplayGuard()
        // A knows itself by its name and its address; B, with the same key, by its own.
        guard case .connect = serve(forA, identities: ["conc-a.example.net", "198.18.10.2"], replay: &replayA).0
        else { return XCTFail("A refused a request made for it") }
        let (atB, why) = serve(forA, identities: ["conc-b.example.net", "198.18.10.3"], replay: &replayB)
        guard case .reject = atB else { return XCTFail("B accepted a request made for A: \(atB)") }
        XCTAssertEqual(why, .badMAC)
        XCTAssertEqual(replayB.count, 0, "a request bound elsewhere must not reach the replay cache")
    }

    func testAnyOfTheConcentratorsNamesWill() throws {
        for name in ["conc-a.example.net", "198.18.10.2"] {
            var replay = ReplayGuard()
            guard case .connect = serve(try sealed(for: name), identities: ["conc-a.example.net", "198.18.10.2"],
                replay: &replay).0
            else { return XCTFail("\(name) refused") }
        }
    }

    func testRequestOlderThanTheProcessIsRefused() throws {
        let started = now - 5_000  // the concentrator restarted 5 s ago; the window is 30 s
        let captured = try sealed(for: "c", at: started - 1)
        var replay = ReplayGuard()
        let (action, why) = serve(captured, identities: ["c"], notBefore: started, replay: &replay)
        guard case .reject(let e) = action else { return XCTFail("accepted a request from before the start") }
        XCTAssertEqual(why, .beforeStart)
        XCTAssertTrue(e.reason.contains("1 ms before this process started"), e.reason)
        XCTAssertEqual(replay.count, 0)
        // Stamped at the start or after: accepted.
        guard case .connect = serve(try sealed(for: "c", at: started, nonce: 2), identities: ["c"],
            notBefore: started, replay: &replay).0
        else { return XCTFail("refused a request stamped at the start") }
    }

    func testBeforeStartIsARefusalReason() {
        XCTAssertEqual(ConvertRefusal(rawValue: "before_start"), .beforeStart)
    }

    /// The MAC's input, computed here independently: what `tests/netns/braid-traffic.py` seals.
    func testMACFormat() throws {
        let identity = "conc.braid.test"
        let bytes = try sealed(for: identity)
        let macStart = bytes.count - ConvertAuthentication.macSize
        var zeroed = bytes
        for i in macStart..<bytes.count { zeroed[i] = 0 }
        let input = Array("braid convert auth v2".utf8) + [UInt8(identity.utf8.count)] + Array(identity.utf8) + zeroed
        XCTAssertEqual(Array(bytes[macStart...]), ConvertAuthenticator.hmac(key: key, input))
    }
}
