import BraidCore
import XCTest

@testable import BraidWire

/// Gateway and concentrator sessions driven against each other in memory with a hand clock.
final class ControlSessionTests: XCTestCase {
    let plan = ControlMessage.ClassInfo(
        name: "business-100", rateDownBitsPerSecond: 100_000_000, rateUpBitsPerSecond: 20_000_000, maxSessions: 4096)
    let timers = ControlTimers(pingIntervalMillis: 10_000, deadAfterMillis: 30_000, handshakeTimeoutMillis: 10_000)

    func link(lifetime: UInt32 = 3600, grace: UInt64 = 120_000) -> ControlLink {
        ControlLink(
            gateway: .init(software: "braid-test 1.0", timers: timers),
            concentrator: .init(
                keyLifetimeSeconds: lifetime, previousKeyGraceMillis: grace, timers: timers, serviceClass: plan))
    }

    func testConcentratorGrantsAKeyAndPushesTheClassAfterHello() throws {
        var l = link()
        l.connect()
        XCTAssertTrue(l.gateway.isEstablished)
        XCTAssertTrue(l.concentrator.isEstablished)
        XCTAssertEqual(l.concentrator.peerHello?.software, "braid-test 1.0")
        let key = try XCTUnwrap(l.gatewayKey)
        XCTAssertEqual(key.id, 1)
        XCTAssertEqual(key.notAfter, l.now + 3_600_000)
        XCTAssertEqual(try l.ring.lookup(id: key.id, nowMillis: l.now).key, key.key)
        XCTAssertEqual(l.gateway.currentKey?.id, key.id)
        XCTAssertEqual(l.gatewayClasses, [plan])
        XCTAssertEqual(l.gateway.serviceClass, plan)
    }

    /// The key is replaced at two thirds of its lifetime; the old one keeps authenticating for
    /// the grace period and is then refused. At every second the key the gateway uses is one the
    /// concentrator accepts, over several rotations.
    func testRotationBeforeExpiryWithOverlap() throws {
        var l = link()
        l.connect()
        let first = try XCTUnwrap(l.gatewayKey)
        let rotation = l.start + 2_400_000

        // A data connection authenticated with the first key just before the rotation...
        l.run(until: rotation - 1000)
        XCTAssertEqual(l.gatewayKey?.id, first.id)
        let request = try ConvertClientHandshake.request(
            to: .init(address: .init("2001:db8::80")!, port: 80),
            authenticator: ConvertAuthenticator(key: first.key, keyID: first.id), nowMillis: l.now,
            nonce: Array(repeating: 9, count: 16))

        l.run(until: rotation)
        let second = try XCTUnwrap(l.gatewayKey)
        XCTAssertEqual(second.id, 2)
        XCTAssertNotEqual(second.key, first.key)
        XCTAssertEqual(l.gatewayRetired, [first.id], "the gateway uses only the newest key")
        XCTAssertEqual(l.ring.count, 2)

        // ...still authenticates when it reaches the concentrator after the rotation.
        l.run(until: rotation + 5000)
        let auth = try XCTUnwrap(ConvertAuthenticator.findAuthentication(request)?.1)
        let entry = try l.ring.lookup(id: auth.keyID, nowMillis: l.now)
        XCTAssertNoThrow(try ConvertAuthenticator(key: entry.key, keyID: entry.id).verify(raw: request))

        l.run(until: rotation + 119_000)
        XCTAssertNoThrow(try l.ring.lookup(id: first.id, nowMillis: l.now))
        l.run(until: rotation + 120_000)
        XCTAssertThrowsError(try l.ring.lookup(id: first.id, nowMillis: l.now)) { error in
            XCTAssertTrue("\(error)".contains("unknown key id 1"), "\(error)")
        }
        XCTAssertEqual(l.concentratorRetired, [first.id])

        try l.run(until: l.start + 4 * 2_400_000 + 1000) { l in
            guard let key = l.gatewayKey else { return XCTFail("gateway without a key at \(l.now)") }
            XCTAssertNoThrow(try l.ring.lookup(id: key.id, nowMillis: l.now), "at \(l.now - l.start) ms")
            XCTAssertLessThanOrEqual(l.ring.count, 2)
        }
        XCTAssertEqual(l.gatewayKey?.id, 5)
        XCTAssertNil(l.gatewayClosed)
        XCTAssertNil(l.concentratorClosed)
        XCTAssertNotNil(l.gateway.roundTripMillis)
    }

    /// Driving both ends only at the times they ask for gives the same rotation, to the millisecond.
    func testNextTickMillisIsEnoughToDriveTheSessions() throws {
        var l = link()
        l.connect()
        var ticks = 0
        while l.gatewayKey?.id != 2 {
            let next = try XCTUnwrap([l.gateway.nextTickMillis, l.concentrator.nextTickMillis].compactMap { $0 }.min())
            XCTAssertGreaterThan(next, l.now)
            l.run(until: next, step: next - l.now)
            ticks += 1
            XCTAssertLessThan(ticks, 1000)
        }
        XCTAssertEqual(l.now, l.start + 2_400_000)
        // One ping each way per 10 s, no busy loop.
        XCTAssertLessThan(ticks, 2 * 241 + 5)
    }

    func testPingsKeepAnIdleChannelAlive() {
        var l = link()
        l.connect()
        l.run(until: l.start + 600_000)
        XCTAssertNil(l.gatewayClosed)
        XCTAssertNil(l.concentratorClosed)
        XCTAssertEqual(l.gateway.roundTripMillis, 0)
        XCTAssertEqual(l.concentrator.roundTripMillis, 0)
    }

    /// Cut the path: both ends declare the peer dead 30 s after they last heard from it, and
    /// keep the keys (data connections may still get through while the channel reconnects).
    func testDeadPeerDetection() {
        var l = link()
        l.connect()
        l.run(until: l.start + 40_000)  // pings crossed at 40 s
        let lastHeard = l.now
        l.severed = true
        l.run(until: lastHeard + 29_000)
        XCTAssertNil(l.gatewayClosed)
        XCTAssertNil(l.concentratorClosed)
        l.run(until: lastHeard + 30_000)
        XCTAssertEqual(l.gatewayClosed, .peerSilent(millis: 30_000))
        XCTAssertEqual(l.concentratorClosed, .peerSilent(millis: 30_000))
        XCTAssertEqual(l.gatewayRetired, [])
        XCTAssertEqual(l.concentratorRetired, [])
        XCTAssertNotNil(l.gatewayKey)
        XCTAssertNil(l.gateway.nextTickMillis)
        XCTAssertEqual(l.gateway.tick(nowMillis: l.now + 60_000), [])
    }

    func testHandshakeTimeouts() {
        var l = link()
        l.severed = true
        l.connect()
        l.run(until: l.start + 9_000)
        XCTAssertNil(l.gatewayClosed)
        l.run(until: l.start + 10_000)
        XCTAssertEqual(l.gatewayClosed, .protocolError(ControlError(.timeout, "no sessionGrant 10000 ms after hello")))
        XCTAssertEqual(
            l.concentratorClosed, .protocolError(ControlError(.timeout, "no hello 10000 ms after the channel opened")))
        XCTAssertNil(l.gatewayKey)
        XCTAssertEqual(l.ring.count, 0)
    }

    func testGoodbyeRetiresTheKeysAtBothEnds() throws {
        var l = link()
        l.connect()
        l.run(until: l.start + 2_400_000 + 1000)  // after a rotation: two live keys
        XCTAssertEqual(l.concentrator.liveKeyIDs, [2, 1])
        l.gatewayDo(l.gateway.shutdown(nowMillis: l.now))
        l.pump()
        XCTAssertEqual(l.gatewayClosed, .shutdown)
        XCTAssertEqual(l.concentratorClosed, .goodbye)
        XCTAssertNil(l.gatewayKey)
        XCTAssertEqual(l.ring.count, 0)
        XCTAssertEqual(l.concentratorRetired, [2, 1])
    }

    func testConcentratorShutdownReachesTheGateway() {
        var l = link()
        l.connect()
        l.concentratorDo(l.concentrator.shutdown(nowMillis: l.now))
        l.pump()
        XCTAssertEqual(l.concentratorClosed, .shutdown)
        XCTAssertEqual(l.gatewayClosed, .goodbye)
        XCTAssertNil(l.gatewayKey)
    }

    func testLostConnectionKeepsKeysUntilExpiry() {
        var l = link()
        l.connect()
        l.gatewayDo(l.gateway.connectionClosed(nowMillis: l.now))
        l.concentratorDo(l.concentrator.connectionClosed(nowMillis: l.now))
        XCTAssertEqual(l.gatewayClosed, .connectionLost)
        XCTAssertNotNil(l.gatewayKey)
        XCTAssertEqual(l.ring.count, 1)
        XCTAssertThrowsError(try l.ring.lookup(id: 1, nowMillis: l.start + 3_600_000))
    }

    func testClassUpdateIsPushed() {
        var l = link()
        l.connect()
        var faster = plan
        faster.rateDownBitsPerSecond = 200_000_000
        l.concentratorDo(l.concentrator.updateClass(faster))
        l.pump()
        XCTAssertEqual(l.gatewayClasses, [plan, faster])
    }

    func testMessagesFromTheWrongEndAreProtocolErrors() throws {
        var l = link()
        l.connect()
        l.injectToConcentrator(try ControlMessage.sessionGrant(ControlMessageTests.grant).encode())
        XCTAssertEqual(
            l.concentratorClosed?.description, "protocol error: unexpected message: sessionGrant sent to a concentrator"
        )
        // The error reached the gateway, which closes in turn and stops using the key.
        XCTAssertEqual(l.gatewayClosed, .peerError(.unexpectedMessage, "sessionGrant sent to a concentrator"))
        XCTAssertNil(l.gatewayKey)
        XCTAssertEqual(l.ring.count, 0)

        var m = link()
        m.connect()
        m.injectToGateway(try ControlMessage.hello(.init(software: "x")).encode())
        XCTAssertEqual(m.gatewayClosed, .protocolError(ControlError(.unexpectedMessage, "hello sent to a gateway")))
        XCTAssertEqual(m.concentratorClosed, .peerError(.unexpectedMessage, "hello sent to a gateway"))
    }

    func testConcentratorWantsHelloFirstAndOnce() throws {
        var session = ConcentratorControlSession(configuration: .init(timers: timers), keys: CountingKeySource())
        _ = session.start(nowMillis: 0)
        let actions = session.receive(
            try ControlMessage.ping(.init(nonce: 1, timestampMillis: 0)).encode(), nowMillis: 1)
        XCTAssertEqual(actions.count, 2)
        XCTAssertEqual(actions.last, .close(.protocolError(ControlError(.unexpectedMessage, "ping before hello"))))
        guard case .send(let frame) = actions.first else { return XCTFail("\(actions)") }
        XCTAssertEqual(
            try ControlMessage.decode(frame: frame), .error(code: .unexpectedMessage, reason: "ping before hello"))
        XCTAssertEqual(
            session.receive(try ControlMessage.goodbye.encode(), nowMillis: 2), [], "closed sessions stay closed")

        var twice = ConcentratorControlSession(configuration: .init(timers: timers), keys: CountingKeySource())
        _ = twice.start(nowMillis: 0)
        let hello = try ControlMessage.hello(.init(software: "x")).encode()
        let out = twice.receive(hello + hello, nowMillis: 1)
        XCTAssertEqual(out.last, .close(.protocolError(ControlError(.unexpectedMessage, "second hello"))))
        XCTAssertTrue(out.contains(.retireKey(id: 1)), "\(out)")
    }

    func testHelloVersionZeroIsRefused() throws {
        var session = ConcentratorControlSession(configuration: .init(timers: timers), keys: CountingKeySource())
        _ = session.start(nowMillis: 0)
        let actions = session.receive(
            try ControlMessage.hello(.init(protocolVersion: 0, software: "old")).encode(), nowMillis: 0)
        XCTAssertEqual(
            actions.last, .close(.protocolError(ControlError(.unsupportedVersion, "hello.protocolVersion 0"))))
        XCTAssertFalse(actions.contains { if case .installKey = $0 { return true } else { return false } })
    }

    func testUnreadableBytesGetAnErrorBeforeTheClose() {
        var l = link()
        l.connect()
        l.injectToGateway([1, 2, 0xff, 0xff])
        XCTAssertEqual(
            l.gatewayClosed,
            .protocolError(ControlError(.frameTooLarge, "sessionGrant frame of 65535 bytes exceeds 1024")))
        XCTAssertEqual(
            l.concentratorClosed, .peerError(.frameTooLarge, "sessionGrant frame of 65535 bytes exceeds 1024"))
    }

    func testGatewayClosesWhenItsKeyExpiresUnrotated() throws {
        var gateway = GatewayControlSession(configuration: .init(software: "x", timers: timers))
        _ = gateway.start(nowMillis: 0)
        var grant = ControlMessageTests.grant
        grant.lifetimeSeconds = 25
        let actions = gateway.receive(try ControlMessage.sessionGrant(grant).encode(), nowMillis: 1000)
        XCTAssertEqual(actions, [.installKey(id: grant.keyID, key: grant.key, notAfterMillis: 26_000)])
        XCTAssertEqual(gateway.nextTickMillis, 10_000)  // the first ping comes before the expiry
        _ = gateway.receive(
            try ControlMessage.pong(.init(nonce: 1, timestampMillis: 10_000)).encode(), nowMillis: 20_000)
        XCTAssertEqual(gateway.tick(nowMillis: 25_999).count, 1, "a ping, not a close")
        let expired = gateway.tick(nowMillis: 26_000)
        XCTAssertEqual(
            expired.dropFirst(),
            [
                .retireKey(id: grant.keyID),
                .close(
                    .protocolError(ControlError(.timeout, "key id \(grant.keyID) expired without a new sessionGrant"))),
            ])
    }

    func testGatewayRefusesAReusedKeyID() throws {
        var gateway = GatewayControlSession(configuration: .init(software: "x", timers: timers))
        _ = gateway.start(nowMillis: 0)
        let frame = try ControlMessage.sessionGrant(ControlMessageTests.grant).encode()
        _ = gateway.receive(frame, nowMillis: 1)
        let again = gateway.receive(frame, nowMillis: 2)
        XCTAssertEqual(
            again.last, .close(.protocolError(ControlError(.invalidValue, "sessionGrant reuses key id 16909060"))))
    }

    func testClassInfoBeforeAGrantIsRefused() throws {
        var gateway = GatewayControlSession(configuration: .init(software: "x", timers: timers))
        _ = gateway.start(nowMillis: 0)
        let actions = gateway.receive(try ControlMessage.classInfo(plan).encode(), nowMillis: 1)
        XCTAssertEqual(
            actions.last,
            .close(.protocolError(ControlError(.unexpectedMessage, "classInfo before the first sessionGrant"))))
    }

    /// A gateway that says it understands addresses gets them after the first grant; the
    /// concentrator's own list, nothing else.
    func testConcentratorAnnouncesItsAddressesToGatewaysThatUnderstandThem() {
        let own = [IPAddress("198.18.10.2")!, IPAddress("2001:db8:10::2")!]
        var config = ConcentratorControlSession.Configuration(timers: timers)
        config.addresses = own
        var l = ControlLink(gateway: .init(software: "braid-test", timers: timers), concentrator: config)
        l.connect()
        XCTAssertEqual(l.concentrator.peerHello?.protocolVersion, ControlMessage.operatorRulesVersion)
        XCTAssertEqual(l.gatewayAddresses, [own])
    }

    /// A gateway of protocol version 1 would close the channel on an unknown message: it gets none.
    func testOldGatewaysGetNoAddresses() throws {
        var config = ConcentratorControlSession.Configuration(timers: timers)
        config.addresses = [IPAddress("2001:db8:10::2")!]
        var c = ConcentratorControlSession(configuration: config, keys: CountingKeySource())
        _ = c.start(nowMillis: 0)
        let hello = try ControlMessage.hello(.init(protocolVersion: 1, software: "old")).encode()
        let actions = c.receive(hello, nowMillis: 1)
        let sent = actions.compactMap { a -> ControlMessage.MessageType? in
            if case .send(let f) = a { return try? ControlMessage.decode(frame: f).type }
            return nil
        }
        XCTAssertEqual(sent, [.sessionGrant])
    }

    /// Addresses before the first grant, or sent to a concentrator, break the protocol.
    func testAddressesOutOfPlaceAreProtocolErrors() throws {
        var g = GatewayControlSession(configuration: .init(software: "t", timers: timers))
        _ = g.start(nowMillis: 0)
        let frame = try ControlMessage.addresses([IPAddress("198.18.10.2")!]).encode()
        let actions = g.receive(frame, nowMillis: 1)
        XCTAssertFalse(actions.contains { if case .learnAddresses = $0 { true } else { false } })
        XCTAssertNotNil(g.closeReason)
    }
}
