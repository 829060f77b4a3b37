import BraidCore
import XCTest

@testable import BraidWire

/// Client and server handshakes driven against each other in memory, with a fake clock.
final class HandshakeTests: XCTestCase {
    let key = [UInt8](repeating: 0x42, count: 32)
    let destination = Endpoint(address: IPAddress("2001:db8:20::2")!, port: 8080)
    let now: UInt64 = 1_790_000_000_000

    func request(nonce: UInt8 = 1, at time: UInt64? = nil, key: [UInt8]? = nil) throws -> [UInt8] {
        try ConvertClientHandshake.request(
            to: destination, authenticator: ConvertAuthenticator(key: key ?? self.key), nowMillis: time ?? now,
            nonce: Array(repeating: nonce, count: 16), askInfo: true)
    }

    func serve(_ bytes: [UInt8], replay: inout ReplayGuard, at time: UInt64? = nil) -> ConvertServerHandshake.Action {
        var server = ConvertServerHandshake(authenticator: ConvertAuthenticator(key: key))
        return server.feed(bytes, nowMillis: time ?? now, replay: &replay)
    }

    func testValidRequestWithDataBehindIt() throws {
        var replay = ReplayGuard()
        let bytes = try request() + Array("hello".utf8)
        guard case .connect(let req, let rest) = serve(bytes, replay: &replay) else { return XCTFail() }
        XCTAssertEqual(req.destination, destination)
        XCTAssertTrue(req.wantsInfo)
        XCTAssertEqual(rest, Array("hello".utf8))
    }

    func testByteByByteFeeding() throws {
        var replay = ReplayGuard()
        var server = ConvertServerHandshake(authenticator: ConvertAuthenticator(key: key))
        let bytes = try request()
        for (i, b) in bytes.enumerated() {
            let action = server.feed([b], nowMillis: now, replay: &replay)
            if i < bytes.count - 1 {
                XCTAssertEqual(action, .needMore)
            } else if case .connect = action {
            } else {
                XCTFail("\(action)")
            }
        }
    }

    func testEverySingleByteChangeIsRefused() throws {
        let good = try request()
        for i in 0..<good.count {
            for flip: UInt8 in [0x01, 0x80] {
                var bad = good
                bad[i] ^= flip
                var replay = ReplayGuard()
                var server = ConvertServerHandshake(authenticator: ConvertAuthenticator(key: key))
                let action = server.feed(bad, nowMillis: now, replay: &replay)
                switch action {
                case .connect: XCTFail("accepted a change at byte \(i)")
                case .reject, .needMore: break  // a longer Total Length waits for bytes that never come
                }
            }
        }
    }

    func testWrongKeyStaleAndReplay() throws {
        var replay = ReplayGuard(windowMillis: 30_000)
        guard case .reject(let e1) = serve(try request(key: Array(repeating: 1, count: 32)), replay: &replay) else {
            return XCTFail()
        }
        XCTAssertEqual(e1.code, .notAuthorized)
        guard case .reject(let e2) = serve(try request(at: now - 31_000), replay: &replay) else { return XCTFail() }
        XCTAssertEqual(e2.code, .notAuthorized)
        guard case .reject(let e3) = serve(try request(at: now + 31_000), replay: &replay) else { return XCTFail() }
        XCTAssertEqual(e3.code, .notAuthorized)
        let once = try request(nonce: 9)
        guard case .connect = serve(once, replay: &replay) else { return XCTFail() }
        guard case .reject(let e4) = serve(once, replay: &replay) else { return XCTFail("replay accepted") }
        XCTAssertEqual(e4.reason, "replayed nonce")
        // Forgeries must not occupy the replay cache.
        XCTAssertEqual(replay.count, 1)
    }

    func testReplayCacheForgetsOutsideTheWindow() throws {
        var replay = ReplayGuard(windowMillis: 1000)
        let auth = ConvertAuthentication(keyID: 0, timestampMillis: 10_000, nonce: Array(repeating: 3, count: 16), mac: [])
        try replay.admit(auth, nowMillis: 10_000)
        var later = auth
        later.nonce = Array(repeating: 4, count: 16)
        later.timestampMillis = 20_000
        try replay.admit(later, nowMillis: 20_000)
        XCTAssertEqual(replay.count, 1)
    }

    func testRequestsWithoutAuthOrWithExtraTLVs() throws {
        var replay = ReplayGuard()
        let noAuth = try ConvertMessage([.connect(destination, tcpOptions: [])]).encode()
        guard case .reject(let e) = serve(noAuth, replay: &replay) else { return XCTFail() }
        XCTAssertEqual(e.code, .notAuthorized)
        let cookie = try ConvertAuthenticator(key: key).seal(
            [.connect(destination, tcpOptions: []), .cookie([1])], nowMillis: now, nonce: Array(repeating: 5, count: 16))
        guard case .reject(let e2) = serve(cookie, replay: &replay) else { return XCTFail() }
        XCTAssertEqual(e2.code, .unsupportedMessage)
    }

    func testClientReadsReplies() {
        var client = ConvertClientHandshake()
        XCTAssertEqual(client.feed(ConvertServerHandshake.successReply(wantsInfo: true).prefix(5)), .needMore)
        XCTAssertEqual(
            client.feed(ConvertServerHandshake.successReply(wantsInfo: true).dropFirst(5) + [1, 2]),
            .established(supportedExtensions: [30], remainder: [1, 2]))
        var refused = ConvertClientHandshake()
        guard case .refused(let e) = refused.feed(ConvertServerHandshake.errorReply(.connectionReset)) else {
            return XCTFail()
        }
        XCTAssertEqual(e.code, .connectionReset)
        var garbage = ConvertClientHandshake()
        guard case .refused = garbage.feed(Array("HTTP/1.1 200".utf8)) else { return XCTFail() }
    }

    func testHMACMatchesRFC4231Case2() {
        let mac = ConvertAuthenticator.hmac(key: Array("Jefe".utf8), Array("what do ya want for nothing?".utf8))
        XCTAssertEqual(
            mac.map { String(format: "%02x", $0) }.joined(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }
}
