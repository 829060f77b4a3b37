import BraidConfig
import BraidCore
import BraidWire
import XCTest

@testable import BraidGateway

/// Which concentrator new sessions go to, driven by a hand clock (seconds turned to nanoseconds).
final class ConcentratorChoiceTests: XCTestCase {
    let a = ConcentratorHost.address(IPAddress("198.18.10.2")!)
    let b = ConcentratorHost.address(IPAddress("198.18.11.2")!)
    let c = ConcentratorHost.name("conc-c.example.net")

    func s(_ seconds: Double) -> UInt64 { UInt64(seconds * 1e9) + 1_000_000_000_000 }

    /// Three concentrators, hold-down 10 s, confirmation 4 s.
    func choice(_ hosts: [ConcentratorHost]? = nil) -> ConcentratorChoice {
        let hosts = hosts ?? [a, b, c]
        var resolved: [ConcentratorHost: [IPAddress]] = [:]
        for case .address(let x) in hosts { resolved[.address(x)] = [x] }
        resolved[c] = [IPAddress("198.18.12.2")!]
        return ConcentratorChoice(
            hosts: hosts, resolved: resolved, holddownNanos: 10_000_000_000, confirmNanos: 4_000_000_000)
    }

    func testStartsOnThePreferredOneAndWaitsForItsFirstVerdict() {
        var x = choice()
        x.channel(b, up: true, now: s(0))
        // a's first connection is under way: no move to b, which would come back after the hold-down.
        XCTAssertNil(x.decide(now: s(0.5)))
        XCTAssertEqual(x.current.host, a)
        x.channel(a, up: true, now: s(1))
        XCTAssertNil(x.decide(now: s(1)))
        XCTAssertEqual(x.current.host, a)
    }

    func testKilledPreferredMovesAtOnceAndComesBackAfterTheHoldDown() {
        var x = choice()
        x.channel(a, up: true, now: s(0))
        x.channel(b, up: true, now: s(0))
        XCTAssertNil(x.decide(now: s(1)))
        x.channel(a, up: false, reason: "connection reset", now: s(2))
        XCTAssertEqual(x.decide(now: s(2))?.to, b)
        XCTAssertEqual(x.current.host, b)
        x.channel(a, up: true, now: s(5))
        XCTAssertNil(x.decide(now: s(14.9)), "a healthy for 9.9 s of a 10 s hold-down")
        XCTAssertEqual(
            x.decide(now: s(15)), ConcentratorChoice.Switch(from: b, to: a, reason: "\(a) preferred, healthy for 10.0 s"))
    }

    func testFlappingPreferredNeverPullsSessionsBack() {
        var x = choice()
        x.channel(a, up: true, now: s(0))
        x.channel(b, up: true, now: s(0))
        x.channel(a, up: false, now: s(1))
        XCTAssertEqual(x.decide(now: s(1))?.to, b)
        // Up 8 s, down, up 8 s, down...: never healthy for a whole hold-down.
        var t = 2.0
        for _ in 0..<5 {
            x.channel(a, up: true, now: s(t))
            for step in stride(from: t, to: t + 8, by: 0.25) { XCTAssertNil(x.decide(now: s(step))) }
            x.channel(a, up: false, now: s(t + 8))
            XCTAssertNil(x.decide(now: s(t + 8)))
            t += 9
        }
        XCTAssertEqual(x.current.host, b)
    }

    func testAllDownStaysAndTheFirstBackTakesOver() {
        var x = choice()
        for h in [a, b, c] { x.channel(h, up: true, now: s(0)) }
        for h in [a, b, c] { x.channel(h, up: false, now: s(1)) }
        XCTAssertNil(x.decide(now: s(1)), "none is healthy: stay")
        XCTAssertEqual(x.current.host, a)
        // c comes back first: sessions go there at once, then to a after its hold-down.
        x.channel(c, up: true, now: s(3))
        XCTAssertEqual(x.decide(now: s(3))?.to, c)
        x.channel(b, up: true, now: s(4))
        x.channel(a, up: true, now: s(5))
        XCTAssertNil(x.decide(now: s(13.9)))
        XCTAssertEqual(x.decide(now: s(14))?.to, b, "b has been healthy for 10 s")
        XCTAssertEqual(x.decide(now: s(15))?.to, a)
    }

    func testSilentConcentratorIsLeftOnTheProbesAndConfirmedByItsChannel() {
        var x = choice()
        x.channel(a, up: true, now: s(0))
        x.channel(b, up: true, now: s(0))
        XCTAssertNil(x.decide(now: s(1)))
        // Blackholed: its channel still looks up (keepalive not expired), the probes say otherwise.
        x.probes(reachable: false, now: s(2))
        XCTAssertEqual(x.decide(now: s(2))?.to, b)
        XCTAssertEqual(
            x.health(x.servers[0], now: s(2)), .down(since: s(2), reason: "probes unanswered on every uplink"))
        // Probes now judge b: they reach it.
        x.probes(reachable: true, now: s(2.5))
        // The channel to a dies of its keepalive, comes back when the blackhole is lifted.
        x.channel(a, up: false, reason: "keepalive", now: s(4))
        x.channel(a, up: true, now: s(8))
        XCTAssertNil(x.decide(now: s(17.9)))
        XCTAssertEqual(x.decide(now: s(18))?.to, a)
    }

    func testShortBlackholeIsConfirmedByTheChannelOutlivingItsKeepalive() {
        var x = choice()
        x.channel(a, up: true, now: s(0))
        x.channel(b, up: true, now: s(0))
        x.probes(reachable: false, now: s(1))
        XCTAssertEqual(x.decide(now: s(1))?.to, b)
        // The channel to a never went down: after 4 s it must have had pongs, so a lives since then.
        XCTAssertNil(x.healthySince(x.servers[0], now: s(4.9)))
        XCTAssertEqual(x.healthySince(x.servers[0], now: s(5)), s(5))
        XCTAssertNil(x.decide(now: s(14.9)))
        XCTAssertEqual(x.decide(now: s(15))?.to, a)
    }

    func testProbesWithNothingToJudgeByMoveNothing() {
        var x = choice()
        x.channel(a, up: true, now: s(0))
        x.channel(b, up: true, now: s(0))
        x.probes(reachable: nil, now: s(1))
        XCTAssertNil(x.decide(now: s(2)))
        XCTAssertEqual(x.current.host, a)
    }

    func testNameChangingAddressKeepsTheChoiceAndReportsTheMove() {
        var x = choice([c, a])
        x.channel(c, up: true, now: s(0))
        x.channel(a, up: true, now: s(0))
        XCTAssertNil(x.decide(now: s(1)))
        XCTAssertFalse(x.resolved(c, [IPAddress("198.18.12.2")!]), "same records: nothing to do")
        XCTAssertTrue(x.resolved(c, [IPAddress("198.18.13.2")!, IPAddress("2001:db8:13::2")!]))
        XCTAssertEqual(x.current.host, c)
        XCTAssertEqual(x.current.addresses.all, [IPAddress("198.18.13.2")!, IPAddress("2001:db8:13::2")!])
        XCTAssertNil(x.decide(now: s(2)), "health belongs to the concentrator, not to an address")
        // A standby's records change: not the one in use.
        XCTAssertFalse(x.resolved(a, [IPAddress("198.18.10.3")!]))
    }

    func testAnnouncedAddressesArePerConcentrator() {
        var x = choice()
        XCTAssertTrue(x.announced(a, [IPAddress("2001:db8:10::2")!]))
        XCTAssertFalse(x.announced(b, [IPAddress("2001:db8:11::2")!]))
        XCTAssertEqual(x.servers[0].addresses.announced, [IPAddress("2001:db8:10::2")!])
        XCTAssertEqual(x.servers[1].addresses.announced, [IPAddress("2001:db8:11::2")!])
    }

    func testReloadKeepsTheOneInUseAndWhatIsKnown() {
        var x = choice()
        x.channel(a, up: true, now: s(0))
        x.channel(b, up: true, now: s(0))
        x.channel(a, up: false, now: s(1))
        XCTAssertEqual(x.decide(now: s(1))?.to, b)
        // b stays, a new preferred one comes first: nothing moves until it is healthy for the hold-down.
        let d = ConcentratorHost.address(IPAddress("198.18.14.2")!)
        XCTAssertNil(x.replace(hosts: [d, b, a], resolved: [d: [IPAddress("198.18.14.2")!]], now: s(2)))
        XCTAssertEqual(x.current.host, b)
        XCTAssertEqual(x.servers[2].channel, .down(since: s(1), reason: "control channel down"))
        XCTAssertNil(x.decide(now: s(3)))
        x.channel(d, up: true, now: s(3))
        XCTAssertNil(x.decide(now: s(12.9)))
        XCTAssertEqual(x.decide(now: s(13))?.to, d)
    }

    func testReloadRemovingTheOneInUseMovesToTheFirstHealthy() {
        var x = choice()
        x.channel(a, up: true, now: s(0))
        x.channel(b, up: false, now: s(0))
        x.channel(c, up: true, now: s(0))
        XCTAssertEqual(x.replace(hosts: [b, c], resolved: [:], now: s(1))?.to, c)
        XCTAssertEqual(x.current.host, c)
        // Nothing healthy left at all: the first.
        XCTAssertEqual(x.replace(hosts: [b], resolved: [:], now: s(2))?.to, b)
    }

    /// A key granted by one concentrator, used against another: the other has its own key under
    /// the same id (key rings count from 1 on each) and its own address as identity, so the MAC fails.
    func testOneConcentratorsKeyIsRefusedByAnother() throws {
        let keyA = SecureRandom.bytes(32)
        let keyB = SecureRandom.bytes(32)
        let sealed = try ConvertAuthenticator(key: keyA, keyID: 1, identity: "198.18.10.2").seal(
            [.connect(Endpoint(address: IPAddress("198.18.20.2")!, port: 80), tcpOptions: [])], nowMillis: 1000,
            nonce: SecureRandom.bytes(ConvertAuthentication.nonceSize))
        XCTAssertNoThrow(
            try ConvertAuthenticator.verify(raw: sealed, key: keyA, keyID: 1, identities: ["198.18.10.2"]))
        XCTAssertThrowsError(
            try ConvertAuthenticator.verify(raw: sealed, key: keyB, keyID: 1, identities: ["198.18.11.2"]))
        // Even a key shared by both (the pre-shared key) fails at b: the MAC names a's address.
        XCTAssertThrowsError(
            try ConvertAuthenticator.verify(raw: sealed, key: keyA, keyID: 1, identities: ["198.18.11.2"]))
    }
}
