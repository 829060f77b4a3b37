import BraidCore
import BraidNetlink
import XCTest

@testable import BraidGateway

final class SubflowPlannerTests: XCTestCase {
    let server = IPAddress("198.18.10.2")!
    let remote = Endpoint(address: IPAddress("198.18.10.2")!, port: 4800)
    let a1 = IPAddress("198.18.1.2")!
    let a2 = IPAddress("198.18.2.2")!
    let a3 = IPAddress("198.18.3.2")!
    let second: UInt64 = 1_000_000_000

    func event(_ kind: MPTCPEvent.Kind, _ token: UInt32 = 7, local: IPAddress? = nil, port: UInt16 = 0, id: UInt8? = nil)
        -> MPTCPEvent
    {
        var e = MPTCPEvent(kind: kind, token: token)
        if let local { e.local = Endpoint(address: local, port: port) }
        e.remote = remote
        e.localID = id
        return e
    }

    func paths(healthy: [Bool], backup: [Bool] = [false, false, false]) -> [SubflowPlanner.Path] {
        [a1, a2, a3].enumerated().map { i, a in
            SubflowPlanner.Path(address: a, ifindex: UInt32(i + 2), backup: backup[i], healthy: healthy[i])
        }
    }

    /// A connection whose first subflow left from a1, established.
    func planner() -> SubflowPlanner {
        var p = SubflowPlanner(server: server, maxSubflows: 9)
        p.handle(event(.created, local: a1, port: 1000))
        p.handle(event(.established, local: a1, port: 1000))
        return p
    }

    /// A pass every `step` until `end`; each time one asks for a subflow from `address` (and at 0,
    /// whose pass the caller ran), the concentrator takes the join and resets it at once
    /// ("administratively prohibited"). Returns when it was asked.
    func refuseEveryJoin(
        _ p: inout SubflowPlanner, from address: IPAddress, id: UInt8, paths: [SubflowPlanner.Path], end: UInt64,
        step: UInt64, only: Set<UInt32>? = nil
    ) -> [UInt64] {
        var asked: [UInt64] = []
        var port: UInt16 = 3000
        var now: UInt64 = 0
        while now < end {
            if now == 0 || creates(p.plan(paths: paths, now: now, only: only)) == [address] {
                asked.append(now)
                port += 1
                p.handle(event(.subflowEstablished, local: address, port: port, id: id))
                var reset = event(.subflowClosed, local: address, port: port)
                reset.resetReason = .prohibited
                p.handle(reset)
            }
            now += step
        }
        return asked
    }

    func creates(_ actions: [SubflowPlanner.Action]) -> [IPAddress] {
        actions.compactMap { if case .create(_, let local, _, _, _, _) = $0 { return local } else { return nil } }
    }

    func testEveryHealthyUplinkGetsASubflowWithItsOwnID() {
        var p = planner()
        let actions = p.plan(paths: paths(healthy: [true, true, true]), now: 0)
        XCTAssertEqual(
            actions,
            [
                .create(token: 7, local: a2, id: 1, backup: false, ifindex: 3, remote: remote),
                .create(token: 7, local: a3, id: 2, backup: false, ifindex: 4, remote: remote),
            ])
        // Asked once: nothing more until the retry delay has passed.
        XCTAssertEqual(p.plan(paths: paths(healthy: [true, true, true]), now: second / 2), [])
    }

    func testAnUplinkWithSeveralSubflowsGetsThemOneAtATime() {
        var p = planner()
        var wanted = paths(healthy: [true, true, true])
        wanted[0].subflows = 2
        wanted[1].subflows = 2
        // a1 already carries the first subflow: its second comes with the others' first, under
        // the first subflow's id, 0 (see testSubflowsFromTheFirstAddressAreWithdrawnByOneRMADDR).
        XCTAssertEqual(
            p.plan(paths: wanted, now: 0),
            [
                .create(token: 7, local: a1, id: 0, backup: false, ifindex: 2, remote: remote),
                .create(token: 7, local: a2, id: 1, backup: false, ifindex: 3, remote: remote),
                .create(token: 7, local: a3, id: 2, backup: false, ifindex: 4, remote: remote),
            ])
        // Nothing more while those are pending: attempts are counted per address.
        XCTAssertEqual(p.plan(paths: wanted, now: second / 2), [])
        p.handle(event(.subflowEstablished, local: a1, port: 1001, id: 0))
        p.handle(event(.subflowEstablished, local: a2, port: 1002, id: 1))
        p.handle(event(.subflowEstablished, local: a3, port: 1003, id: 2))
        // a2's second is asked for at once, with a2's id; a1 and a3 have what they should.
        XCTAssertEqual(
            p.plan(paths: wanted, now: second / 2 + 1),
            [.create(token: 7, local: a2, id: 1, backup: false, ifindex: 3, remote: remote)])
        p.handle(event(.subflowEstablished, local: a2, port: 1004, id: 1))
        XCTAssertEqual(p.plan(paths: wanted, now: 10 * second), [])
        XCTAssertEqual(p.subflowsByAddress, [a1: 2, a2: 2, a3: 1])
        // One of a1's two lost: only that one is asked for again, once the loss (held against
        // a1 after its grace period) has doubled a1's retry delay.
        p.handle(event(.subflowClosed, local: a1, port: 1001, id: 0))
        XCTAssertEqual(creates(p.plan(paths: wanted, now: 11 * second)), [])
        XCTAssertEqual(creates(p.plan(paths: wanted, now: 12 * second)), [])
        XCTAssertEqual(creates(p.plan(paths: wanted, now: 13 * second)), [a1])
    }

    /// The kernel sends the RM_ADDR of a withdrawn address on the first subflow in the
    /// connection's list that can send and whose id is not the one withdrawn: the first subflow,
    /// unless it is among those withdrawn. Every subflow from the first address shares its id, 0,
    /// so the RM_ADDR never leaves on another subflow of the dead uplink, and one RM_ADDR tells
    /// the concentrator to close them all; it is asked for before any of them closes.
    func testSubflowsFromTheFirstAddressAreWithdrawnByOneRMADDR() {
        var p = planner()
        var wanted = paths(healthy: [true, true, true])
        wanted[0].subflows = 2
        _ = p.plan(paths: wanted, now: 0)
        p.handle(event(.subflowEstablished, local: a1, port: 1001, id: 0))
        p.handle(event(.subflowEstablished, local: a2, port: 2000, id: 1))
        p.handle(event(.subflowEstablished, local: a3, port: 3000, id: 2))
        let first = SubflowPlanner.Subflow(local: Endpoint(address: a1, port: 1000), remote: remote)
        let second1 = SubflowPlanner.Subflow(local: Endpoint(address: a1, port: 1001), remote: remote)
        wanted[0].healthy = false
        XCTAssertEqual(p.plan(paths: wanted, now: second), [.remove(token: 7, id: 0, [first, second1])])
        // Back: both come again under id 0, one at a time.
        wanted[0].healthy = true
        p.handle(event(.subflowClosed, local: a1, port: 1000))
        p.handle(event(.subflowClosed, local: a1, port: 1001))
        XCTAssertEqual(
            p.plan(paths: wanted, now: 2 * second),
            [.create(token: 7, local: a1, id: 0, backup: false, ifindex: 2, remote: remote)])
    }

    func testAnotherAddressKeepsOneIDForAllItsSubflows() {
        var p = planner()
        var wanted = paths(healthy: [true, true, true])
        wanted[1].subflows = 2
        _ = p.plan(paths: wanted, now: 0)
        p.handle(event(.subflowEstablished, local: a2, port: 2000, id: 1))
        p.handle(event(.subflowEstablished, local: a3, port: 3000, id: 2))
        _ = p.plan(paths: wanted, now: 1)
        p.handle(event(.subflowEstablished, local: a2, port: 2001, id: 1))
        wanted[1].healthy = false
        let s2 = [2000, 2001].map { SubflowPlanner.Subflow(local: Endpoint(address: a2, port: $0), remote: remote) }
        XCTAssertEqual(p.plan(paths: wanted, now: second), [.remove(token: 7, id: 1, s2)])
    }

    /// A kernel that refuses id 0 for a new subflow: the first address gets an id of its own in
    /// that connection, and is asked for again at once.
    func testARefusedIDZeroFallsBackToAnIDOfItsOwn() {
        var p = planner()
        var wanted = paths(healthy: [true, true, true])
        wanted[0].subflows = 2
        XCTAssertEqual(creates(p.plan(paths: wanted, now: 0)), [a1, a2, a3])
        p.sharedIDRefused(token: 7, address: a1)
        XCTAssertEqual(
            p.plan(paths: wanted, now: 1),
            [.create(token: 7, local: a1, id: 3, backup: false, ifindex: 2, remote: remote)])
        XCTAssertNil(p.breaksMPTCP(a1))
        // Only id 0 falls back: a refusal reported for another address changes nothing.
        p.sharedIDRefused(token: 7, address: a2)
        XCTAssertEqual(p.plan(paths: wanted, now: 2), [])
    }

    func testSeveralSubflowsPerUplinkStayWithinMaxSubflows() {
        var p = SubflowPlanner(server: server, maxSubflows: 3)
        p.handle(event(.created, local: a1, port: 1000))
        p.handle(event(.established, local: a1, port: 1000))
        var wanted = paths(healthy: [true, true, true])
        wanted[0].subflows = 4
        XCTAssertEqual(creates(p.plan(paths: wanted, now: 0)), [a1, a2])
    }

    func testNothingBeforeTheConnectionIsEstablishedAndNothingForOtherConnections() {
        var p = SubflowPlanner(server: server, maxSubflows: 9)
        p.handle(event(.created, local: a1, port: 1000))
        XCTAssertEqual(p.plan(paths: paths(healthy: [true, true, true]), now: 0), [])
        var accepted = event(.established, 8, local: a1, port: 1001)
        accepted.serverSide = true
        p.handle(accepted)
        var elsewhere = event(.established, 9, local: a1, port: 1002)
        elsewhere.remote = Endpoint(address: IPAddress("198.18.20.2")!, port: 80)
        p.handle(elsewhere)
        XCTAssertEqual(p.connections.keys.sorted(), [7])
    }

    func testDownUplinkIsWithdrawnButNeverTheLastWayOut() {
        var p = planner()
        _ = p.plan(paths: paths(healthy: [true, true, true]), now: 0)
        p.handle(event(.subflowEstablished, local: a2, port: 2000, id: 1))
        p.handle(event(.subflowEstablished, local: a3, port: 3000, id: 2))
        // The first subflow's uplink goes down: its address, id 0, is withdrawn.
        let s1 = SubflowPlanner.Subflow(local: Endpoint(address: a1, port: 1000), remote: remote)
        XCTAssertEqual(p.plan(paths: paths(healthy: [false, true, true]), now: second), [.remove(token: 7, id: 0, [s1])])
        XCTAssertEqual(p.plan(paths: paths(healthy: [false, true, true]), now: 2 * second), [], "asked once")
        p.handle(event(.subflowClosed, local: a1, port: 1000))
        // Everything down: the remaining subflows are kept.
        XCTAssertEqual(p.plan(paths: paths(healthy: [false, false, false]), now: 3 * second), [])
        // a1 back: a new subflow from the first subflow's address, with an id of its own.
        XCTAssertEqual(
            creates(p.plan(paths: paths(healthy: [true, true, true]), now: 4 * second)), [a1])
        XCTAssertNil(p.breaksMPTCP(a1), "a subflow we closed is not a failure of the path")
    }

    func testAWithdrawnSubflowStillClosingDoesNotDelayTheNewOne() {
        var p = planner()
        _ = p.plan(paths: paths(healthy: [true, true, true]), now: 0)
        p.handle(event(.subflowEstablished, local: a2, port: 2000, id: 1))
        _ = p.plan(paths: paths(healthy: [false, true, true]), now: second)  // a1's subflow withdrawn
        // a1 is back before the old subflow has finished closing (its FIN waited for the path).
        XCTAssertEqual(creates(p.plan(paths: paths(healthy: [true, true, true]), now: 2 * second)), [a1])
    }

    /// An uplink that loses its carrier is absent from the paths (not unhealthy): what its
    /// connections recorded before (a lost subflow, refusals) must not delay it when it is back.
    func testAnUplinkBackFromACarrierLossIsAskedForAtOnce() {
        var p = planner()
        let all = paths(healthy: [true, true, true])
        _ = p.plan(paths: all, now: 0)
        p.handle(event(.subflowEstablished, local: a2, port: 2000, id: 1))
        // a3's joins are taken and reset by the concentrator, each time it is asked, for 10 s: it
        // backs off, 8 s by then.
        let asked = refuseEveryJoin(&p, from: a3, id: 2, paths: all, end: 10 * second, step: second / 10)
        XCTAssertEqual(asked.count, 3, "a3 asked at 0, 2 and 6 s, next not before 14 s: \(asked)")
        // a2's subflow closes (the path or the peer) just as both carriers go, for 3 s.
        p.handle(event(.subflowClosed, local: a2, port: 2000))
        let carrierLost = [all[0]]
        XCTAssertEqual(p.plan(paths: carrierLost, now: 10 * second), [])
        XCTAssertEqual(p.plan(paths: carrierLost, now: 12 * second), [])
        XCTAssertEqual(creates(p.plan(paths: all, now: 13 * second)), [a2, a3], "both asked for at once when back")
    }

    func testAnUnansweredSubflowGetsThreeSecondsBeforeItCounts() {
        var p = planner()
        let all = paths(healthy: [true, true, true])
        XCTAssertEqual(creates(p.plan(paths: all, now: 0)), [a2, a3])
        p.handle(event(.subflowEstablished, local: a3, port: 3000, id: 2))
        // a2's SYN is being retransmitted: no second request, no failure, until 3 s.
        XCTAssertEqual(creates(p.plan(paths: all, now: 2 * second)), [])
        XCTAssertEqual(creates(p.plan(paths: all, now: 3 * second)), [a2])
        XCTAssertEqual(p.records[a2]?.failures, 1)
    }

    /// An origin's reset reaches the gateway as the concentrator's MP_FASTCLOSE: every subflow of
    /// the connection closes at once, and the connection's CLOSED event follows when the relay has
    /// closed its socket. None of that is held against the uplinks; a subflow lost by a connection
    /// that lives on counts once the grace period is over.
    func testSubflowsLostWithTheirConnectionSayNothingOfThePaths() {
        var p = planner()  // connection 7, first subflow from a1
        let all = paths(healthy: [true, true, true])
        let tokens: [UInt32] = [7, 8, 9]
        for t in tokens.dropFirst() { p.handle(event(.established, t, local: a1, port: 1000 + UInt16(t))) }
        _ = p.plan(paths: all, now: 0)
        for t in tokens {
            p.handle(event(.subflowEstablished, t, local: a2, port: 2000 + UInt16(t), id: 1))
            p.handle(event(.subflowEstablished, t, local: a3, port: 3000 + UInt16(t), id: 2))
        }
        // Three origins reset: each connection loses all its subflows; a pass runs before the
        // relays have closed their sockets, then the CLOSED events come.
        p.handle(
            tokens.flatMap { t in
                [
                    event(.subflowClosed, t, local: a2, port: 2000 + UInt16(t)),
                    event(.subflowClosed, t, local: a3, port: 3000 + UInt16(t)),
                    event(.subflowClosed, t, local: a1, port: 1000 + UInt16(t)),
                ]
            })
        _ = p.plan(paths: all, now: second / 10)
        p.handle(tokens.map { event(.closed, $0) })
        _ = p.plan(paths: all, now: 2 * second)
        XCTAssertNil(p.breaksMPTCP(a2))
        XCTAssertEqual(p.records[a2]?.failures ?? 0, 0)
        // A subflow lost by a connection that lives on counts, after the grace period.
        p.handle(event(.established, 10, local: a1, port: 1010))
        _ = p.plan(paths: all, now: 3 * second)
        p.handle(event(.subflowEstablished, 10, local: a2, port: 2010, id: 1))
        p.handle(event(.subflowClosed, 10, local: a2, port: 2010))
        _ = p.plan(paths: all, now: 4 * second)
        XCTAssertEqual(p.records[a2]?.failures ?? 0, 0, "not yet: its connection may be ending")
        _ = p.plan(paths: all, now: 4 * second + SubflowPlanner.lossGraceNanos)
        XCTAssertEqual(p.records[a2]?.failures, 1, "the connection lives on: its lost subflow counts")
    }

    func testAConnectionWithNoSubflowLeftIsForgotten() {
        var p = planner()  // its CLOSED event lost
        p.reconcile(established: [])
        XCTAssertTrue(p.connections.isEmpty)
        XCTAssertEqual(p.plan(paths: paths(healthy: [true, true, true]), now: 0), [])
    }

    func testOnlyDataConnectionsJudgeAPath() {
        var p = SubflowPlanner(server: server, maxSubflows: 9, judgedPort: 4800)
        let control = Endpoint(address: server, port: 4803)
        var e = event(.established, 9, local: a1, port: 1000)
        e.remote = control
        p.handle(e)
        XCTAssertEqual(creates(p.plan(paths: paths(healthy: [true, true, true]), now: 0)), [a2, a3])
        for _ in 0..<4 {
            var closed = event(.subflowClosed, 9, local: a2, port: 2000)
            closed.remote = control
            p.handle(closed)
        }
        _ = p.plan(paths: paths(healthy: [true, true, true]), now: 10 * second)
        XCTAssertNil(p.records[a2], "a filtered control port says nothing of the uplink")
    }

    func testAPassLimitedToSomeConnectionsLeavesTheOthersAlone() {
        var p = planner()
        var other = event(.created, 8, local: a1, port: 1001)
        p.handle(other)
        other.kind = .established
        p.handle(other)
        let all = paths(healthy: [true, true, true])
        XCTAssertEqual(p.plan(paths: all, now: 0, only: [8]).map(token), [8, 8])
        XCTAssertEqual(p.plan(paths: all, now: 0, only: [99]), [], "a token no longer known")
        XCTAssertEqual(p.plan(paths: all, now: 0).map(token), [7, 7])
    }

    func token(_ a: SubflowPlanner.Action) -> UInt32 {
        switch a {
        case .create(let t, _, _, _, _, _), .remove(let t, _, _), .setBackup(let t, _, _): return t
        }
    }

    func testBackupUplinksSubflowsAreMarkedBackup() {
        var p = planner()
        // The connection started on what is now a backup uplink.
        let actions = p.plan(paths: paths(healthy: [true, true, true], backup: [true, false, false]), now: 0)
        let s1 = SubflowPlanner.Subflow(local: Endpoint(address: a1, port: 1000), remote: remote)
        XCTAssertTrue(actions.contains(.setBackup(token: 7, s1, true)))
        XCTAssertFalse(
            p.plan(paths: paths(healthy: [true, true, true], backup: [true, false, false]), now: 1).contains(
                .setBackup(token: 7, s1, true)), "asked once")
        var q = planner()
        XCTAssertTrue(
            q.plan(paths: paths(healthy: [true, true, true], backup: [false, false, true]), now: 0).contains(
                .create(token: 7, local: a3, id: 2, backup: true, ifindex: 4, remote: remote)))
    }

    func testRefusedSubflowsBackOffAndReportThePath() {
        var p = planner()
        let all = paths(healthy: [true, true, true])
        var now: UInt64 = 0
        XCTAssertEqual(creates(p.plan(paths: all, now: now)), [a2, a3])
        p.handle(event(.subflowEstablished, local: a3, port: 3000, id: 2))
        var waits: [UInt64] = []
        var last: UInt64 = 0
        for _ in 0..<5 {
            p.handle(event(.subflowClosed, local: a2, port: 2000))  // refused at once
            // No retry before the delay, whatever triggers a pass.
            XCTAssertEqual(creates(p.plan(paths: all, now: now + 1)), [])
            while creates(p.plan(paths: all, now: now)) != [a2] { now += second / 10 }
            waits.append(now - last)
            last = now
        }
        // 1 s base, doubled per failure in a row, at most 8 s.
        XCTAssertEqual(waits.map { $0 / second }, [2, 4, 8, 8, 8])
        XCTAssertEqual(p.breaksMPTCP(a2)?.failures, 5)
        XCTAssertNil(p.breaksMPTCP(a3))
        // The first subflow that works clears the record.
        p.handle(event(.subflowEstablished, local: a2, port: 2001, id: 1))
        XCTAssertNil(p.breaksMPTCP(a2))
    }

    /// The join storm of the soak: the concentrator refuses a connection's joins from an uplink
    /// ("administratively prohibited": that connection is at its subflow limit there). The
    /// connection backs off on its own, up to 32 s, the path is not reported as breaking MPTCP,
    /// and other connections from the same uplink are not slowed.
    func testJoinsTheConcentratorProhibitsBackOffPerConnectionAndSayNothingOfThePath() {
        var p = planner()
        p.handle(event(.created, 8, local: a1, port: 1001))
        p.handle(event(.established, 8, local: a1, port: 1001))
        let all = paths(healthy: [true, true, true])
        var now: UInt64 = 0
        XCTAssertEqual(creates(p.plan(paths: all, now: now)), [a2, a3, a2, a3])
        for token: UInt32 in [7, 8] { p.handle(event(.subflowEstablished, token, local: a3, port: 3000, id: 2)) }
        var refused = event(.subflowClosed, local: a2, port: 2000)
        refused.resetReason = .prohibited
        var waits: [UInt64] = []
        var last: UInt64 = 0
        for _ in 0..<7 {
            p.handle(refused)
            while creates(p.plan(paths: all, now: now, only: [7])) != [a2] { now += second / 10 }
            waits.append(now - last)
            last = now
        }
        XCTAssertEqual(waits.map { $0 / second }, [2, 4, 8, 16, 32, 32, 32])
        XCTAssertNil(p.breaksMPTCP(a2), "a refusal by the concentrator is not the path's fault")
        // Connection 8, never refused, retries its unanswered a2 subflow after the usual 3 s.
        XCTAssertEqual(creates(p.plan(paths: all, now: 3 * second, only: [8])), [a2])
        p.handle(event(.subflowEstablished, 8, local: a2, port: 2002, id: 1))
        // A subflow that gets through (still up at a check) ends the backoff: after the next
        // refusal it starts over at 2 s.
        p.handle(event(.subflowEstablished, local: a2, port: 2001, id: 1))
        p.reconcile(established: Set(p.connections[7]!.subflows.keys).union(p.connections[8]!.subflows.keys))
        p.handle(event(.subflowClosed, local: a2, port: 2001))
        now += 10 * second
        XCTAssertEqual(creates(p.plan(paths: all, now: now, only: [7])), [], "lost just now: one retry interval first")
        now += second
        XCTAssertEqual(creates(p.plan(paths: all, now: now, only: [7])), [], "the loss counted: a2's retry delay doubled")
        now += second
        XCTAssertEqual(creates(p.plan(paths: all, now: now, only: [7])), [a2])
        p.handle(refused)
        XCTAssertEqual(creates(p.plan(paths: all, now: now + 2 * second + 1, only: [7])), [a2])
    }

    /// The soak's join loop: the concentrator takes each join from an uplink and resets it a
    /// moment later ("administratively prohibited": the connection is at its limit there). Seen
    /// by the gateway as a subflow established and then closed, it was asked for again by the
    /// very pass those events started: a thousand joins a second on one connection, and the
    /// uplink reported as breaking MPTCP two thousand times. Now it is a refusal: it backs off,
    /// and it says nothing of the path.
    func testAJoinTakenAndResetAtOnceBacksOffLikeARefusal() {
        var p = planner()
        let all = paths(healthy: [true, true, true])
        XCTAssertEqual(creates(p.plan(paths: all, now: 0)), [a2, a3])
        p.handle(event(.subflowEstablished, local: a2, port: 2000, id: 1))
        let asked = refuseEveryJoin(&p, from: a3, id: 2, paths: all, end: 40 * second, step: second / 100, only: [7])
        XCTAssertLessThanOrEqual(asked.count, 6, "asked at \(asked.map { $0 / (second / 100) }) (10 ms units)")
        let gaps = zip(asked.dropFirst(), asked).map { ($0 - $1) / second }
        XCTAssertEqual(gaps, [2, 4, 8, 16], "backs off as a refusal does")
        XCTAssertNil(p.breaksMPTCP(a3), "the concentrator's limit is not the path's fault")
        // A subflow lost for another reason is asked for again after the retry delay, not at once.
        var q = planner()
        _ = q.plan(paths: all, now: 0)
        q.handle(event(.subflowEstablished, local: a2, port: 2000, id: 1))
        q.handle(event(.subflowEstablished, local: a3, port: 3000, id: 2))
        q.handle(event(.subflowClosed, local: a3, port: 3000))
        XCTAssertEqual(creates(q.plan(paths: all, now: 5 * second)), [])
        XCTAssertEqual(creates(q.plan(paths: all, now: 6 * second)), [], "held against a3: its retry delay doubled")
        XCTAssertEqual(creates(q.plan(paths: all, now: 7 * second)), [a3])
    }

    func testASubflowResetWithoutAnEventIsFoundAndOpenedAgain() {
        var p = planner()
        _ = p.plan(paths: paths(healthy: [true, true, true]), now: 0)
        p.handle(event(.subflowEstablished, local: a2, port: 2000, id: 1))
        p.handle(event(.subflowEstablished, local: a3, port: 3000, id: 2))
        let live: Set<SubflowPlanner.Subflow> = [
            .init(local: Endpoint(address: a1, port: 1000), remote: remote),
            .init(local: Endpoint(address: a3, port: 3000), remote: remote),
        ]
        p.reconcile(established: live)
        XCTAssertEqual(p.breaksMPTCP(a2), nil, "one failure is not yet a pattern")
        XCTAssertEqual(
            p.plan(paths: paths(healthy: [true, true, true]), now: second),
            [.create(token: 7, local: a2, id: 1, backup: false, ifindex: 3, remote: remote)], "same address, same id")
        p.handle(event(.closed))
        XCTAssertTrue(p.connections.isEmpty)
    }

    // MARK: join delay

    func delayedPlanner(_ delay: UInt64) -> SubflowPlanner {
        SubflowPlanner(servers: ConcentratorAddresses(configured: [server]), maxSubflows: 9, joinDelayNanos: delay)
    }

    func open(_ p: inout SubflowPlanner, _ token: UInt32, port: UInt16) {
        p.handle(event(.created, token, local: a1, port: port))
        p.handle(event(.established, token, local: a1, port: port))
    }

    func testAShortConnectionEndsBeforeItsSubflowsAreAskedFor() {
        var p = delayedPlanner(second / 10)
        let up = paths(healthy: [true, true, true])
        open(&p, 7, port: 1000)
        XCTAssertEqual(p.plan(paths: up, now: 0, only: [7]), [], "no subflow during the delay")
        XCTAssertEqual(p.nextJoinDue, second / 10)
        p.handle(event(.closed))
        XCTAssertEqual(p.plan(paths: up, now: second / 10, only: []), [], "gone before it was due: nothing asked")
        XCTAssertNil(p.nextJoinDue)
    }

    func testAConnectionThatLivesPastTheDelayGetsEverySubflowAtTheDuePass() {
        var p = delayedPlanner(second / 10)
        let up = paths(healthy: [true, true, true])
        open(&p, 7, port: 1000)
        XCTAssertEqual(p.plan(paths: up, now: 0, only: [7]), [])
        open(&p, 8, port: 1001)
        XCTAssertEqual(p.plan(paths: up, now: second / 20, only: [8]), [])
        // Events about a waiting connection do not hurry it.
        XCTAssertEqual(p.plan(paths: up, now: second / 20, only: [7]), [])
        // The due pass takes what is due and leaves the other waiting, without being told of either.
        XCTAssertEqual(creates(p.plan(paths: up, now: second / 10, only: [])), [a2, a3])
        XCTAssertEqual(p.nextJoinDue, second / 20 + second / 10)
        let late = p.plan(paths: up, now: second / 20 + second / 10, only: [])
        XCTAssertEqual(late.count, 2)
        XCTAssertTrue(late.allSatisfy { if case .create(8, _, _, _, _, _) = $0 { true } else { false } })
        XCTAssertNil(p.nextJoinDue)
    }

    func testWithoutADelaySubflowsAreAskedForAtOnce() {
        var p = delayedPlanner(0)
        open(&p, 7, port: 1000)
        XCTAssertEqual(creates(p.plan(paths: paths(healthy: [true, true, true]), now: 0, only: [7])), [a2, a3])
        XCTAssertNil(p.nextJoinDue)
    }

    /// A burst of new connections costs no paths: a pass that only starts join delays never
    /// builds them (the supervisor's `paths()` was most of the gateway's work per connection).
    func testPassesThatOnlyStartJoinDelaysDoNotBuildThePaths() {
        var p = delayedPlanner(second / 10)
        var built = 0
        func counted() -> [SubflowPlanner.Path] {
            built += 1
            return paths(healthy: [true, true, true])
        }
        for token in UInt32(1)...50 {
            open(&p, token, port: UInt16(1000 + token))
            XCTAssertEqual(p.plan(paths: counted(), now: UInt64(token), only: [token]), [])
        }
        XCTAssertEqual(built, 0, "paths built for connections still in their join delay")
        // The due pass needs them, once for all the connections it takes.
        XCTAssertEqual(creates(p.plan(paths: counted(), now: second, only: [])).count, 100)
        XCTAssertEqual(built, 1)
    }

    /// The supervisor reports on paths after a pass over some connections only when a path's
    /// record changed.
    func testRecordsVersionMovesOnlyWithTheRecords() {
        var p = planner()
        let before = p.recordsVersion
        _ = p.plan(paths: paths(healthy: [true, true, true]), now: 0)
        XCTAssertEqual(p.recordsVersion, before, "asking for subflows changes no record")
        p.handle(event(.subflowClosed, local: a2, port: 1002))
        XCTAssertNotEqual(p.recordsVersion, before, "a refused subflow is on its path's record")
    }
}
