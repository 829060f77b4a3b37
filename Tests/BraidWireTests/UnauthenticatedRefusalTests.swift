import BraidCore
import XCTest

@testable import BraidWire

/// A valid sealed request, cut and bent every way: nothing but the original is accepted, and
/// only once. Each refusal names its reason for the log; the client is sent the same bytes.
final class UnauthenticatedRefusalTests: XCTestCase {
    let key = [UInt8](repeating: 0x42, count: 32)
    let destination = Endpoint(address: IPAddress("198.18.20.2")!, port: 8080)
    let now: UInt64 = 1_790_000_000_000

    func sealed(keyID: UInt32 = 0, key: [UInt8]? = nil, at time: UInt64? = nil, nonce: UInt8 = 7) throws -> [UInt8] {
        try ConvertClientHandshake.request(
            to: destination, authenticator: ConvertAuthenticator(key: key ?? self.key, keyID: keyID),
            nowMillis: time ?? now, nonce: Array(repeating: nonce, count: 16), askInfo: true)
    }

    func server() -> ConvertServerHandshake {
        ConvertServerHandshake(authenticator: ConvertAuthenticator(key: key))
    }

    /// Feeds `bytes`, then the end of the stream if the handshake still wants more.
    func feedThenEOF(_ bytes: [UInt8], replay: inout ReplayGuard) -> (ConvertServerHandshake.Action, ConvertRefusal?) {
        var handshake = server()
        var action = handshake.feed(bytes, nowMillis: now, replay: &replay)
        if action == .needMore { action = handshake.endOfStream() }
        return (action, handshake.refusal)
    }

    func testTheOneAnswerIsNotAuthorized() {
        XCTAssertEqual(ConvertServerHandshake.unauthenticatedReply, [1, 2, 0, 0, 30, 1, 32, 0])
        var client = ConvertClientHandshake()
        guard case .refused(let e) = client.feed(ConvertServerHandshake.unauthenticatedReply) else {
            return XCTFail("the gateway does not read the answer as a refusal")
        }
        XCTAssertEqual(e.code, .notAuthorized)
    }

    func testEveryTruncationIsRefused() throws {
        let good = try sealed()
        for length in 0..<good.count {
            var replay = ReplayGuard()
            var handshake = server()
            XCTAssertEqual(
                handshake.feed(good.prefix(length), nowMillis: now, replay: &replay), .needMore, "prefix \(length)")
            guard case .reject(let e) = handshake.endOfStream() else { return XCTFail("prefix \(length) not refused") }
            XCTAssertEqual(handshake.refusal, .truncated, "prefix \(length)")
            XCTAssertTrue(e.reason.contains("after \(length) bytes"), e.reason)
            XCTAssertEqual(replay.count, 0)
        }
        // The untouched request is accepted, so the refusals above are about the cut alone.
        var replay = ReplayGuard()
        guard case .connect = feedThenEOF(good, replay: &replay).0 else { return XCTFail("valid request refused") }
    }

    func testEverySingleByteChangeIsRefused() throws {
        let good = try sealed()
        var reasons: [ConvertRefusal: Int] = [:]
        for i in 0..<good.count {
            for value in Set([good[i] ^ 0x01, good[i] ^ 0x80, good[i] ^ 0xff, 0x00, 0xff]) where value != good[i] {
                var bad = good
                bad[i] = value
                var replay = ReplayGuard()
                let (action, refusal) = feedThenEOF(bad, replay: &replay)
                guard case .reject = action, let refusal else {
                    return XCTFail("byte \(i) = \(value) not refused: \(action)")
                }
                reasons[refusal, default: 0] += 1
                // Refused before the replay cache: a forgery cannot push real nonces out.
                XCTAssertEqual(replay.count, 0, "byte \(i) = \(value)")
            }
        }
        // The changes reach every check: the header, the TLV walk, the key id and the MAC.
        for reason in [ConvertRefusal.unsupportedVersion, .malformed, .truncated, .unknownKey, .badMAC] {
            XCTAssertGreaterThan(reasons[reason, default: 0], 0, "no change was refused as \(reason): \(reasons)")
        }
    }

    func testReplayIsRefused() throws {
        let good = try sealed()
        var replay = ReplayGuard()
        guard case .connect = feedThenEOF(good, replay: &replay).0 else { return XCTFail("first use refused") }
        let (again, refusal) = feedThenEOF(good, replay: &replay)
        guard case .reject(let e) = again else { return XCTFail("replay accepted") }
        XCTAssertEqual(refusal, .replayed)
        XCTAssertEqual(e.code, .notAuthorized)
        // Byte by byte, the same: the replay is caught however the bytes arrive.
        var handshake = server()
        var last = ConvertServerHandshake.Action.needMore
        for b in good { last = handshake.feed([b], nowMillis: now, replay: &replay) }
        guard case .reject = last else { return XCTFail("replay fed byte by byte accepted") }
        XCTAssertEqual(handshake.refusal, .replayed)
    }

    func testEachWayOfBeingWrongHasItsReason() throws {
        var replay = ReplayGuard(windowMillis: 30_000)
        let cases: [(String, [UInt8], ConvertRefusal)] = [
            ("HTTP", Array("GET / HTTP/1.1\r\n\r\n".utf8), .unsupportedVersion),
            ("version 2", [2] + (try sealed()).dropFirst(), .unsupportedVersion),
            ("no TLVs", [1, 0, 0, 0], .malformed),
            ("no auth", try ConvertMessage([.connect(destination, tcpOptions: [])]).encode(), .noAuthentication),
            ("unknown key id", try sealed(keyID: 9, nonce: 1), .unknownKey),
            ("other key", try sealed(key: Array(repeating: 1, count: 32), nonce: 2), .badMAC),
            ("stale", try sealed(at: now - 31_000, nonce: 3), .stale),
            ("from the future", try sealed(at: now + 31_000, nonce: 4), .stale),
            ("half a request", Array(try sealed(nonce: 5).prefix(30)), .truncated),
        ]
        for (label, bytes, reason) in cases {
            let (action, refusal) = feedThenEOF(bytes, replay: &replay)
            guard case .reject = action else { return XCTFail("\(label) not refused: \(action)") }
            XCTAssertEqual(refusal, reason, label)
        }
        XCTAssertEqual(replay.count, 0)
    }

    func testAFullReplayCacheIsItsOwnReason() throws {
        var replay = ReplayGuard(windowMillis: 30_000, capacity: 1)
        guard case .connect = feedThenEOF(try sealed(nonce: 1), replay: &replay).0 else { return XCTFail() }
        let (action, refusal) = feedThenEOF(try sealed(nonce: 2), replay: &replay)
        guard case .reject(let e) = action else { return XCTFail("\(action)") }
        XCTAssertEqual(e.code, .resourceExceeded)
        XCTAssertEqual(refusal, .replayCacheFull)
    }
}
