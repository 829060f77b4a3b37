import BraidCore
import XCTest

@testable import BraidWire

final class ControlKeyRingTests: XCTestCase {
    func key(_ byte: UInt8) -> [UInt8] { [UInt8](repeating: byte, count: 32) }

    func testLookupRefusesUnknownAndExpiredKeys() throws {
        var ring = SessionKeyRing()
        try ring.install(id: 7, key: key(7), notAfterMillis: 1000, owner: "gw-1")
        XCTAssertEqual(try ring.lookup(id: 7, nowMillis: 999).key, key(7))
        XCTAssertEqual(try ring.lookup(id: 7, nowMillis: 999).owner, "gw-1")
        XCTAssertThrowsError(try ring.lookup(id: 7, nowMillis: 1000)) { error in
            XCTAssertEqual(error as? ControlError, ControlError(.notAuthorized, "key id 7 expired 0 ms ago"))
        }
        XCTAssertThrowsError(try ring.lookup(id: 8, nowMillis: 0)) { error in
            XCTAssertEqual(error as? ControlError, ControlError(.notAuthorized, "unknown key id 8"))
        }
        XCTAssertThrowsError(try ring.lookup(id: 0, nowMillis: 0), "key id 0 is the pre-shared key's, never the ring's")
    }

    func testAnOwnerKeepsCurrentAndPreviousOnly() throws {
        var ring = SessionKeyRing()
        XCTAssertEqual(try ring.install(id: 1, key: key(1), notAfterMillis: 10_000, owner: "gw-1"), [])
        XCTAssertEqual(try ring.install(id: 2, key: key(2), notAfterMillis: 10_000, owner: "gw-1"), [])
        XCTAssertEqual(try ring.install(id: 10, key: key(10), notAfterMillis: 10_000, owner: "gw-2"), [])
        XCTAssertEqual(try ring.install(id: 3, key: key(3), notAfterMillis: 10_000, owner: "gw-1"), [1])
        XCTAssertThrowsError(try ring.lookup(id: 1, nowMillis: 0))
        XCTAssertNoThrow(try ring.lookup(id: 2, nowMillis: 0))
        XCTAssertNoThrow(try ring.lookup(id: 10, nowMillis: 0), "another owner's keys are untouched")
        XCTAssertEqual(ring.count, 3)
        ring.retireAll(owner: "gw-1")
        XCTAssertEqual(ring.count, 1)
    }

    func testInstallRefusesBadKeys() throws {
        var ring = SessionKeyRing()
        try ring.install(id: 5, key: key(5), notAfterMillis: 1, owner: "gw-1")
        XCTAssertThrowsError(try ring.install(id: 5, key: key(6), notAfterMillis: 1, owner: "gw-2")) { error in
            XCTAssertEqual(error as? ControlError, ControlError(.invalidValue, "key id 5 is already in use by gw-1"))
        }
        XCTAssertEqual(try ring.lookup(id: 5, nowMillis: 0).key, key(5), "a duplicate does not replace the key")
        XCTAssertThrowsError(try ring.install(id: 0, key: key(0), notAfterMillis: 1, owner: "gw-1"))
        XCTAssertThrowsError(try ring.install(id: 6, key: Array(key(6).prefix(16)), notAfterMillis: 1, owner: "gw-1")) {
            XCTAssertEqual($0 as? ControlError, ControlError(.invalidValue, "key 6 of 16 bytes, expected 32"))
        }
    }

    func testRetireAndPrune() throws {
        var ring = SessionKeyRing()
        try ring.install(id: 1, key: key(1), notAfterMillis: 100, owner: "a")
        try ring.install(id: 2, key: key(2), notAfterMillis: 200, owner: "a")
        try ring.install(id: 3, key: key(3), notAfterMillis: 300, owner: "b")
        ring.retire(id: 2)
        ring.retire(id: 42)
        XCTAssertEqual(ring.count, 2)
        XCTAssertEqual(ring.prune(nowMillis: 300), [1, 3])
        XCTAssertEqual(ring.count, 0)
        // The owner's slots were freed: two new keys evict nothing.
        XCTAssertEqual(try ring.install(id: 4, key: key(4), notAfterMillis: 400, owner: "a"), [])
        XCTAssertEqual(try ring.install(id: 5, key: key(5), notAfterMillis: 400, owner: "a"), [])
    }

    func testUnusedIDSkipsTakenIDs() throws {
        var ring = SessionKeyRing()
        try ring.install(id: 1, key: key(1), notAfterMillis: 100, owner: "a")
        try ring.install(id: 2, key: key(2), notAfterMillis: 100, owner: "b")
        // UInt32.random(in: 1...max) keeps the high word of output · (2^32 - 1): outputs 1, 2
        // and 3 land on ids 1, 2 and 3.
        var random = ScriptedRandom(values: [1, 2, 3])
        XCTAssertEqual(ring.unusedID(using: &random), 3)
        var seeded = SeededRandom(state: 1)
        for _ in 0..<1000 { XCTAssertNotEqual(ring.unusedID(using: &seeded), 0) }
    }

    /// The concentrator's handshake finds each request's key in the ring by key id; the
    /// pre-shared key can stay behind id 0.
    func testConvertRequestsAuthenticateAgainstTheRing() throws {
        var ring = SessionKeyRing()
        try ring.install(id: 5, key: key(5), notAfterMillis: 10_000, owner: "gw-1")
        try ring.install(id: 6, key: key(6), notAfterMillis: 20_000, owner: "gw-2")
        let psk = key(0xee)
        let destination = Endpoint(address: IPAddress("198.18.20.2")!, port: 443)

        func serve(keyID: UInt32, key: [UInt8], at now: UInt64) throws -> ConvertServerHandshake.Action {
            let snapshot = ring
            var server = ConvertServerHandshake(lookup: { id in
                id == 0 ? psk : try snapshot.lookup(id: id, nowMillis: now).key
            })
            let request = try ConvertClientHandshake.request(
                to: destination, authenticator: ConvertAuthenticator(key: key, keyID: keyID), nowMillis: now,
                nonce: Array(repeating: UInt8(truncatingIfNeeded: now), count: 16))
            var replay = ReplayGuard()
            return server.feed(request, nowMillis: now, replay: &replay)
        }

        guard case .connect(let request, _) = try serve(keyID: 5, key: key(5), at: 9_999) else { return XCTFail() }
        XCTAssertEqual(request.authentication.keyID, 5)
        guard case .connect = try serve(keyID: 0, key: psk, at: 1) else { return XCTFail("pre-shared key refused") }
        XCTAssertEqual(
            try serve(keyID: 5, key: key(5), at: 10_000),
            .reject(ConvertError(.notAuthorized, "key id 5 expired 0 ms ago")))
        XCTAssertEqual(
            try serve(keyID: 7, key: key(7), at: 1), .reject(ConvertError(.notAuthorized, "unknown key id 7")))
        // Another gateway's key id with this gateway's key: the MAC does not match.
        XCTAssertEqual(try serve(keyID: 6, key: key(5), at: 1), .reject(ConvertError(.notAuthorized, "bad MAC")))
    }
}
