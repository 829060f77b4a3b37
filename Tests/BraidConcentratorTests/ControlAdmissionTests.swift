import BraidCore
import BraidDataPlane
import BraidWire
import XCTest

@testable import BraidConcentrator

/// The control port's admission under a reconnect storm and under abuse, against a model of the
/// server (one thread computing the admitted handshakes in turn) and of the gateways (the real
/// `Backoff.controlChannel`, seeded): no sockets, a hand clock.
final class ControlAdmissionTests: XCTestCase {
    func source(_ text: String) -> SourceBlock { SourceBlock(IPAddress(text)!) }

    /// Gateway `i` of the fleet lab: 198.18.128.0 + i, one address each (lab/fleet.sh).
    func labSource(_ i: Int) -> SourceBlock { SourceBlock(ipv4: 0xC612_8000 + UInt32(i)) }

    // MARK: - The pace

    func testPaceFollowsTheRateHandshakesFinishAt() {
        var pace = HandshakePace(ceiling: 256, targetMillis: 5000, floor: 64)
        XCTAssertEqual(pace.limit(nowMillis: 0), 256, "nothing finished: nothing says the server is slow")
        // The first one finished: one a second so far, the floor.
        pace.finished(nowMillis: 10_000)
        XCTAssertEqual(pace.limit(nowMillis: 10_500), 64)
        // 20 a second for 3 s: 20 × 5 s = 100 may be in flight.
        for ms in stride(from: UInt64(50), to: 3000, by: 50) { pace.finished(nowMillis: 10_000 + ms) }
        XCTAssertEqual(pace.limit(nowMillis: 13_000), 100)
        // 200 a second: capped at max_control_handshakes.
        for ms in stride(from: UInt64(0), to: 2000, by: 5) { pace.finished(nowMillis: 13_000 + ms) }
        XCTAssertEqual(pace.limit(nowMillis: 15_000), 256)
        // Quiet for longer than the window: the ceiling again.
        XCTAssertEqual(pace.limit(nowMillis: 21_000), 256)
    }

    func testPaceNeverAboveTheCeiling() {
        let pace = HandshakePace(ceiling: 1, targetMillis: 5000)
        XCTAssertEqual(pace.floor, 1, "max_control_handshakes 1 (hostile.sh) stays 1")
        XCTAssertEqual(pace.limit(nowMillis: 0), 1)
    }

    // MARK: - Fair-share eviction

    /// Single-connection sources, spread over eight /24s as they arrive, filling every slot: a
    /// newcomer is refused, nobody's work is lost; the data port's policy would evict each time.
    func testGenuineGatewaysAreNotEvictedForNewcomers() {
        // Gateway i from 198.18.(128 + i % 8).(i / 8).
        let gateway = { (i: Int) in SourceBlock(ipv4: 0xC612_8000 + UInt32(i % 8) << 8 + UInt32(i / 8)) }
        var slots = PendingSlots<Int>()
        for i in 0..<64 {
            guard case .admitted = slots.admit(gateway(i), holder: i, maxTotal: 64, maxPerSource: 16,
                eviction: .overFairShare)
            else { return XCTFail("gateway \(i) refused with slots free") }
        }
        for i in 64..<2000 {
            guard case .overTotal = slots.admit(gateway(i), holder: i, maxTotal: 64, maxPerSource: 16,
                eviction: .overFairShare)
            else { return XCTFail("gateway \(i): admitted by evicting a gateway in flight") }
        }
        XCTAssertEqual(slots.total, 64)
        guard case .admitted(_, let evicted?) = slots.admit(gateway(2000), holder: 2000, maxTotal: 64, maxPerSource: 16)
        else { return XCTFail("the data port's policy evicts for a newcomer") }
        XCTAssertLessThan(evicted, 64)
    }

    /// A /24 of stallers holding every slot gives way to gateways elsewhere, down to about half
    /// the share of each; its own next connection is refused.
    func testASourceOverItsShareGivesWay() {
        var slots = PendingSlots<String>()
        for i in 0..<64 {
            _ = slots.admit(source("198.18.30.\(i / 16 + 1)"), holder: "stall", maxTotal: 64, maxPerSource: 16,
                eviction: .overFairShare)
        }
        var admitted = 0
        for i in 0..<64 {
            if case .admitted(_, let evicted) = slots.admit(
                labSource(i), holder: "gw", maxTotal: 64, maxPerSource: 16, eviction: .overFairShare)
            {
                XCTAssertEqual(evicted, "stall")
                admitted += 1
            }
        }
        // Two /24s share 64: the gateways' takes slots until it holds half its share of 32.
        XCTAssertEqual(admitted, 16)
        XCTAssertEqual(slots.count(from: labSource(0)), 1)
        // The stallers' next connection is refused; one from a new address of theirs takes from
        // their heaviest address, not from the gateways.
        guard case .overTotal = slots.admit(source("198.18.30.1"), holder: "stall", maxTotal: 64, maxPerSource: 16,
            eviction: .overFairShare)
        else { return XCTFail("the stallers' heaviest address took a slot back") }
        if case .admitted(_, let evicted) = slots.admit(
            source("198.18.30.5"), holder: "stall", maxTotal: 64, maxPerSource: 16, eviction: .overFairShare)
        {
            XCTAssertEqual(evicted, "stall")
        }
        XCTAssertEqual((0..<16).map { slots.count(from: labSource($0)) }.reduce(0, +), 16)
    }

    // MARK: - The storm

    /// 2,000 gateways (the bench's fleet, one address each) lose their channel at once and come
    /// back with their backoff; the server finishes 50 handshakes a second (a loaded machine,
    /// debug build): every one holds a key again within 1.5 × 2,000 / 50 s, no handshake times
    /// out, and hardly any is evicted (with the data port's policy, 8,900 of them are).
    func testAStormOfSingleConnectionSourcesConverges() {
        var policy = ControlAdmissionPolicy<Int>(maxTotal: 256, maxPerSource: 16, handshakeTimeoutMillis: 10_000)
        var storm = StormModel(gateways: 2000, serviceMillis: 10, source: labSource)
        let result = storm.run(limitMillis: 150_000, admission: StormAdmission(
            admit: { policy.admit($0, holder: $1, nowMillis: $2) },
            finished: { policy.finished($0, nowMillis: $1) },
            ended: { policy.ended($0) }))
        XCTAssertEqual(result.finished, 2000, "\(result)")
        XCTAssertLessThan(result.lastMillis, 60_000, "\(result)")
        XCTAssertLessThan(result.evicted, 20, "\(result)")
        XCTAssertEqual(result.timedOut, 0, "\(result)")
    }

    /// A /24 of stallers (16 addresses, 16 handshakes each, reconnecting at once whenever one
    /// ends) holds every slot when 200 gateways elsewhere, and 5 in the stallers' own /24, come
    /// back: all 205 hold a key within a minute, the stallers' handshakes evicted for them.
    func testAnAbusiveSourceCannotLockOthersOut() {
        var policy = ControlAdmissionPolicy<Int>(maxTotal: 256, maxPerSource: 16, handshakeTimeoutMillis: 10_000)
        let stallers = (0..<256).map { source("198.18.30.\($0 / 16 + 1)") }
        var storm = StormModel(gateways: 205, serviceMillis: 10) { i in
            i < 200 ? self.labSource(i) : self.source("198.18.30.\(100 + i - 200)")
        }
        storm.stallers = stallers
        let result = storm.run(limitMillis: 60_000, admission: StormAdmission(
            admit: { policy.admit($0, holder: $1, nowMillis: $2) },
            finished: { policy.finished($0, nowMillis: $1) },
            ended: { policy.ended($0) }))
        XCTAssertEqual(result.finished, 205, "\(result)")
        XCTAssertGreaterThan(result.stallersEvicted, 0, "\(result)")
    }
}

/// How the model asks an admission policy.
struct StormAdmission {
    var admit: (SourceBlock, Int, UInt64) -> ControlAdmissionPolicy<Int>.Decision
    var finished: (UInt64, UInt64) -> Void
    var ended: (UInt64) -> Void
}

/// A reconnect storm in 1 ms steps. Gateways all lost their channel at 0 and retry with the
/// gateway's backoff (seeded). A TLS 1.3 handshake takes two turns of the server's one thread
/// (the ClientHello: key share and signature; the client's Certificate and Finished: two
/// verifications), `serviceMillis` each, with one turn of the clients' one thread in between (the
/// simulated fleet's, `serviceMillis` too), each thread taking its work in order of arrival; a
/// handshake not finished 10 s after accept times out. Optionally stallers, which hold a slot
/// until evicted or timed out and reconnect at once, and never send anything to compute.
struct StormModel {
    struct Result: CustomStringConvertible {
        var finished = 0
        var lastMillis: UInt64 = 0
        var evicted = 0
        var timedOut = 0
        var refused = 0
        var stallersEvicted = 0
        var description: String {
            "finished \(finished) by \(lastMillis) ms; evicted \(evicted) (stallers \(stallersEvicted)), "
                + "timed out \(timedOut), refused \(refused)"
        }
    }

    /// One thread's work in order of arrival: (holder, ticket) and how far the head has got.
    struct Thread {
        var queue: [(holder: Int, ticket: UInt64)] = []
        var head = 0
        var work: UInt64 = 0

        /// One ms of work; the task finished with it, if any. Tasks no longer valid are skipped.
        mutating func step(_ millis: UInt64, valid: ((holder: Int, ticket: UInt64)) -> Bool) -> Int? {
            while head < queue.count, !valid(queue[head]) {
                head += 1
                work = 0
            }
            guard head < queue.count else { return nil }
            work += 1
            guard work >= millis else { return nil }
            head += 1
            work = 0
            return queue[head - 1].holder
        }
    }

    let gateways: Int
    let serviceMillis: UInt64
    let source: (Int) -> SourceBlock
    /// Each staller's source; holder ids from `gateways` on.
    var stallers: [SourceBlock] = []
    static let timeoutMillis: UInt64 = 10_000

    init(gateways: Int, serviceMillis: UInt64, source: @escaping (Int) -> SourceBlock) {
        self.gateways = gateways
        self.serviceMillis = serviceMillis
        self.source = source
    }

    mutating func run(limitMillis: UInt64, admission: StormAdmission) -> Result {
        var random = SeededRandom(state: 14)
        var backoff = [Backoff](repeating: .controlChannel, count: gateways)
        var due: [UInt64: [Int]] = [:]
        for g in 0..<gateways { due[backoff[g].next(using: &random), default: []].append(g) }
        // Holder → (ticket, accepted at, turns done by the server); every admission in order, for
        // the timeouts.
        var inFlight: [Int: (ticket: UInt64, since: UInt64, turns: Int)] = [:]
        var admitted: [(holder: Int, ticket: UInt64, since: UInt64)] = []
        var oldest = 0
        var server = Thread()
        var client = Thread()
        var result = Result()
        var done = 0
        var stallerAt: [UInt64: [Int]] = [0: Array(gateways..<(gateways + stallers.count))]

        func lost(_ h: Int, _ now: UInt64) {
            if h >= gateways {
                stallerAt[now + 1, default: []].append(h)
            } else {
                due[now + 1 + backoff[h].next(using: &random), default: []].append(h)
            }
        }
        let valid = { (task: (holder: Int, ticket: UInt64)) in inFlight[task.holder]?.ticket == task.ticket }
        for now in 0..<limitMillis {
            // Arrivals: stallers first (they were there before the storm), then gateways.
            for h in (stallerAt.removeValue(forKey: now) ?? []) + (due.removeValue(forKey: now) ?? []) {
                let from = h >= gateways ? stallers[h - gateways] : source(h)
                switch admission.admit(from, h, now) {
                case .admitted(let ticket, let evicted):
                    if let e = evicted, inFlight.removeValue(forKey: e) != nil {
                        result.evicted += 1
                        if e >= gateways { result.stallersEvicted += 1 }
                        lost(e, now)
                    }
                    inFlight[h] = (ticket, now, 0)
                    admitted.append((h, ticket, now))
                    if h < gateways { server.queue.append((h, ticket)) }
                case .refused:
                    result.refused += 1
                    lost(h, now)
                }
            }
            // Timeouts, oldest admission first.
            while oldest < admitted.count {
                let entry = admitted[oldest]
                if inFlight[entry.holder]?.ticket == entry.ticket {
                    guard now - entry.since >= Self.timeoutMillis else { break }
                    inFlight[entry.holder] = nil
                    admission.ended(entry.ticket)
                    result.timedOut += 1
                    lost(entry.holder, now)
                }
                oldest += 1
            }
            // One ms of each thread.
            if let g = client.step(serviceMillis, valid: valid) { server.queue.append((g, inFlight[g]!.ticket)) }
            if let g = server.step(serviceMillis, valid: valid) {
                inFlight[g]!.turns += 1
                if inFlight[g]!.turns == 1 {
                    client.queue.append((g, inFlight[g]!.ticket))
                } else {
                    admission.finished(inFlight.removeValue(forKey: g)!.ticket, now)
                    done += 1
                    result.finished += 1
                    result.lastMillis = now
                }
            }
            if done == gateways { break }
        }
        return result
    }
}

/// splitmix64: the same storm on every run.
private struct SeededRandom: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
