import BraidCore
import BraidNetlink

/// Which subflows each MPTCP connection to the concentrator should have, given which uplinks are
/// healthy: the policy half of the gateway's userspace path manager. Sans-I/O: it is told the
/// kernel's events and the uplinks' state, with the time passed in, and answers with commands.
///
/// Why not the kernel's own path manager: on Linux 6.18 it opens subflows only when a connection
/// is established or an endpoint is added, and never again from the address of the connection's
/// first subflow. A session that started on an uplink which later failed and came back would
/// never use that uplink again. Here every connection gets a subflow on every healthy uplink,
/// whenever it is missing, for as long as the connection lives.
struct SubflowPlanner {
    /// An uplink address that can carry subflows.
    struct Path: Equatable {
        var address: IPAddress
        /// The concentrator address of `address`'s family, which subflows from it dial; nil
        /// dials the address the connection was opened to.
        var server: IPAddress? = nil
        var ifindex: UInt32
        /// The uplink's role is backup: its subflows carry data only when no other can (MP_PRIO).
        var backup: Bool
        var healthy: Bool
        /// Subflows each connection should have from `address` (the uplink's `subflows`).
        var subflows = 1
    }

    struct Subflow: Hashable {
        var local: Endpoint
        var remote: Endpoint
    }

    enum Action: Equatable {
        case create(token: UInt32, local: IPAddress, id: UInt8, backup: Bool, ifindex: UInt32, remote: Endpoint)
        /// Withdraw a local address (id 0 is the first subflow's) from the connection (one RM_ADDR
        /// to the concentrator), then close every subflow listed, all of them from that address.
        case remove(token: UInt32, id: UInt8, [Subflow])
        case setBackup(token: UInt32, Subflow, Bool)
    }

    struct Connection {
        var remote: Endpoint
        var established = false
        /// Live subflows and whether each is marked backup.
        var subflows: [Subflow: Bool] = [:]
        /// Address ids this connection has used, by local address. The kernel keeps an id bound
        /// to its address for the connection's life, so a re-created subflow must reuse it.
        ///
        /// Every subflow from one address has that address's id, the first subflow's address
        /// included (id 0): the RM_ADDR that withdraws a dead address leaves on a subflow the
        /// kernel picks, the first of the connection's list that can send and whose id is not
        /// the one removed (net/mptcp/pm.c, `mptcp_pm_addr_send_ack_avoid_list`, 6.18). The
        /// first subflow is first in that list, so a second subflow from its address under an id
        /// of its own made the RM_ADDR of either id leave on the other one, into the dead path:
        /// the concentrator never heard of the outage, kept both subflows and the data queued on
        /// them (1.2 MB in the failover benchmark) until their retransmission timeouts marked them
        /// stale, seconds later.
        var ids: [IPAddress: UInt8] = [:]
        /// When a subflow from an address was last asked for, to pace retries.
        var attempts: [IPAddress: UInt64] = [:]
        var destroying: Set<Subflow> = []
        /// Addresses whose last attempt is already counted as failed (refused at once).
        var refused: Set<IPAddress> = []
        /// Joins from an address the concentrator refused in a row for this connection (MP_TCPRST
        /// "administratively prohibited": the connection is at its subflow limit there, or not
        /// yet fully established). Paces this connection's retries from the address, not the path.
        var prohibited: [IPAddress: Int] = [:]
        /// Addresses whose live subflow closed since the last pass: the pass that sees it asks for
        /// none from there before the retry delay.
        var lost: Set<IPAddress> = []
        var priorityAsked: [Subflow: Bool] = [:]
        /// When a pass first found it established: its other subflows wait `joinDelayNanos` from then.
        var firstPlanned: UInt64?

        init(remote: Endpoint, firstAddress: IPAddress) {
            self.remote = remote
            ids[firstAddress] = 0
        }

        mutating func id(for address: IPAddress) -> UInt8? {
            if let id = ids[address] { return id }
            let used = Set(ids.values)
            guard let free = (1...UInt8.max).first(where: { !used.contains($0) }) else { return nil }
            ids[address] = free
            return free
        }
    }

    /// What became of the subflows asked for from one address: a path whose subflows keep being
    /// refused or reset while its probes pass is one that breaks MPTCP (a middlebox removing
    /// MPTCP options from the handshake or the data), and is asked less and less often.
    struct PathRecord: Equatable {
        /// Subflows lost or never established in a row, reset by the first one that works.
        var failures = 0
        var lastFailure: String?
    }

    /// Consecutive failures after which a path is reported as breaking MPTCP.
    static let failingAfter = 3
    /// A connection's retries from an address the concentrator keeps refusing wait twice as long
    /// after each refusal, up to 2^this times `retryNanos` (32 s): a connection at its limit there
    /// (subflows the concentrator has not freed yet) is not asked about every second.
    static let prohibitedBackoffLimit = 5
    /// How long a subflow asked for may go unanswered before it counts as failed.
    static let answerNanos: UInt64 = 3_000_000_000

    /// Only connections to these addresses are ours to manage (data and control connections
    /// alike). Replaced when a name resolves anew or the concentrator announces addresses.
    var servers: ConcentratorAddresses
    /// At most this many subflows per connection, the first included. A reload may change it;
    /// subflows beyond a lowered limit are left to close on their own.
    var maxSubflows: Int
    /// A failed or unanswered subflow is asked for again after this long.
    let retryNanos: UInt64
    private(set) var connections: [UInt32: Connection] = [:]
    private(set) var records: [IPAddress: PathRecord] = [:] {
        didSet { recordsVersion &+= 1 }
    }
    /// Changes whenever `records` does: the owner reports on paths again only then, not after
    /// every batch of events.
    private(set) var recordsVersion: UInt64 = 0

    /// Only subflows to this port (the data port) are held against a path: the control
    /// connection's can fail for reasons of its own (a filter on its port), which say nothing of
    /// how the uplink carries data. nil judges every connection.
    let judgedPort: UInt16?

    init(server: IPAddress, maxSubflows: Int, retryNanos: UInt64 = 1_000_000_000, judgedPort: UInt16? = nil) {
        self.init(
            servers: ConcentratorAddresses(configured: [server]), maxSubflows: maxSubflows, retryNanos: retryNanos,
            judgedPort: judgedPort)
    }

    init(
        servers: ConcentratorAddresses, maxSubflows: Int, retryNanos: UInt64 = 1_000_000_000, judgedPort: UInt16? = nil,
        joinDelayNanos: UInt64 = 0
    ) {
        self.servers = servers
        self.maxSubflows = maxSubflows
        self.retryNanos = retryNanos
        self.judgedPort = judgedPort
        self.joinDelayNanos = joinDelayNanos
    }

    /// How long a new connection runs on its first subflow before the others are asked for.
    ///
    /// Most connections are short (a web page's requests, an API call, a DNS-over-TCP exchange):
    /// they end within a few round trips, before a subflow asked for at once could carry a byte.
    /// Each such subflow still costs a handshake, its MPTCP keys and a close on every uplink, at
    /// both ends, and two thirds of the packets of a short connection over three uplinks. A
    /// connection that lives past the delay gets every subflow then, with nothing lost but the
    /// delay itself against a transfer of seconds. 0 asks at once.
    let joinDelayNanos: UInt64
    /// Connections waiting out `joinDelayNanos`, in the order they became due (the delay is the
    /// same for all): the pass that is due takes them from the front, without looking at the rest.
    private var waiting: [(token: UInt32, due: UInt64)] = []
    private var waitingHead = 0

    /// When the first connection waiting out the join delay is due, if any: the owner runs a
    /// pass then (`plan(only: [])` takes every connection that is due).
    var nextJoinDue: UInt64? { waitingHead < waiting.count ? waiting[waitingHead].due : nil }

    /// Removes and returns the waiting connections due at `now`.
    private mutating func dueJoins(now: UInt64) -> [UInt32] {
        var due: [UInt32] = []
        while waitingHead < waiting.count, waiting[waitingHead].due <= now {
            due.append(waiting[waitingHead].token)
            waitingHead += 1
        }
        if waitingHead > 1024 && waitingHead * 2 > waiting.count {
            waiting.removeFirst(waitingHead)
            waitingHead = 0
        }
        return due
    }

    /// A live subflow that closed, not yet held against its path.
    struct Loss {
        var address: IPAddress
        var port: UInt16
        var reason: String
        /// When a pass first saw it; nil until then.
        var seenAt: UInt64?
    }

    /// Subflows lost by connections that are still open, by connection, judged after `lossGraceNanos`.
    private var unjudged: [UInt32: [Loss]] = [:]

    /// How long a lost subflow waits before it counts against its path: a connection the
    /// concentrator resets (an origin's reset, carried as MP_FASTCLOSE) loses every subflow at
    /// once, and its CLOSED event comes only when the relay has closed the socket, a moment later.
    /// Those losses say nothing of the paths; the soak counted thousands of false "uplink breaks
    /// MPTCP" reports in two minutes of origin resets when each counted at once.
    static let lossGraceNanos: UInt64 = 500_000_000

    /// Follows the kernel's account of connections and subflows: one event.
    mutating func handle(_ e: MPTCPEvent) {
        handle(CollectionOfOne(e))
    }

    /// Follows a batch of events (what one read of the event socket brought).
    mutating func handle(_ events: some Sequence<MPTCPEvent>) {
        for e in events { apply(e) }
    }

    /// Holds the losses of connections still open after the grace period against their paths,
    /// and forgets those of connections that have ended.
    mutating func judgeLosses(now: UInt64) {
        for token in unjudged.keys.sorted() {
            guard connections[token] != nil, var losses = unjudged[token] else {
                unjudged[token] = nil
                continue
            }
            for i in losses.indices where losses[i].seenAt == nil { losses[i].seenAt = now }
            for loss in losses where now &- (loss.seenAt ?? now) >= Self.lossGraceNanos {
                failed(loss.address, loss.port, loss.reason)
            }
            losses.removeAll { now &- ($0.seenAt ?? now) >= Self.lossGraceNanos }
            unjudged[token] = losses.isEmpty ? nil : losses
        }
    }

    private mutating func apply(_ e: MPTCPEvent) {
        switch e.kind {
        case .created, .established:
            guard !e.serverSide, let local = e.local, let remote = e.remote, servers.contains(remote.address) else {
                return
            }
            var c = connections[e.token] ?? Connection(remote: remote, firstAddress: local.address)
            c.subflows[Subflow(local: local, remote: remote)] = c.subflows[Subflow(local: local, remote: remote)] ?? false
            if e.kind == .established { c.established = true }
            connections[e.token] = c
        case .closed:
            connections[e.token] = nil
            unjudged[e.token] = nil
        case .subflowEstablished, .subflowPriority:
            guard var c = connections[e.token], let local = e.local, let remote = e.remote else { return }
            let s = Subflow(local: local, remote: remote)
            c.subflows[s] = e.backup
            if e.kind == .subflowEstablished {
                records[local.address] = PathRecord()
                c.attempts[local.address] = nil
                c.refused.remove(local.address)
                c.lost.remove(local.address)
                // `prohibited` stays until the subflow is still up at a check (`reconcile`): the
                // concentrator may take a join and reset it a moment later, at its limit.
            }
            if let id = e.localID, id != 0, c.ids[local.address] == nil { c.ids[local.address] = id }
            connections[e.token] = c
        case .subflowClosed:
            guard var c = connections[e.token], let local = e.local, let remote = e.remote else { return }
            let s = Subflow(local: local, remote: remote)
            if c.subflows.removeValue(forKey: s) != nil, !c.destroying.contains(s) {
                if e.resetReason == .prohibited {
                    // Taken, then reset by the concentrator at its limit for this connection: a
                    // refusal like any other, nothing against the path.
                    c.prohibited[local.address, default: 0] += 1
                } else {
                    unjudged[e.token, default: []].append(
                        Loss(
                            address: local.address, port: remote.port,
                            reason: e.error.map { "subflow closed, error \($0)" } ?? "subflow closed by the path or the peer"))
                }
                // Not asked for again at the speed of events: a join that is up and reset at once,
                // asked for again by the pass its events start, looped at a thousand joins a second
                // on one connection in the soak.
                c.lost.insert(local.address)
            } else if c.attempts[local.address] != nil, !c.destroying.contains(s),
                c.refused.insert(local.address).inserted
            {
                // The attempt stays on record, so the next one waits for retryDelay.
                if e.resetReason == .prohibited {
                    // The concentrator answered with MPTCP options intact and said no for this
                    // connection alone: nothing against the path; this connection asks less often.
                    c.prohibited[local.address, default: 0] += 1
                } else {
                    failed(local.address, remote.port, e.error.map { "subflow refused, error \($0)" } ?? "subflow refused")
                }
            }
            c.destroying.remove(s)
            c.priorityAsked[s] = nil
            connections[e.token] = c
        case .announced, .removed, .other:
            break
        }
    }

    /// Reconciles with the subflows the kernel has established (its TCP socket table): a subflow
    /// it reset without an event (as when MPTCP options vanish mid-stream) is forgotten and
    /// counted against its path. Subflows the events have not told of yet are left to them.
    mutating func reconcile(established live: Set<Subflow>) {
        for token in connections.keys {
            guard var c = connections[token], c.established else { continue }
            // A subflow still up at a check was accepted for good: the backoff of refusals ends.
            for s in c.subflows.keys where live.contains(s) { c.prohibited[s.local.address] = nil }
            for s in c.subflows.keys where !live.contains(s) {
                c.subflows[s] = nil
                c.priorityAsked[s] = nil
                if c.destroying.remove(s) == nil {
                    failed(s.local.address, s.remote.port, "subflow reset without notice")
                }
            }
            // No subflow left at all: the connection is gone and its CLOSED event was lost (an
            // overrun); asking for subflows of a dead token would count against healthy paths.
            connections[token] = c.subflows.isEmpty ? nil : c
        }
    }

    private mutating func failed(_ address: IPAddress, _ port: UInt16, _ reason: String) {
        if let judgedPort, port != judgedPort { return }
        var r = records[address] ?? PathRecord()
        r.failures += 1
        r.lastFailure = reason
        records[address] = r
    }

    /// Whether subflows from `address` have failed often enough in a row to report its path.
    func breaksMPTCP(_ address: IPAddress) -> PathRecord? {
        guard let r = records[address], r.failures >= Self.failingAfter else { return nil }
        return r
    }

    /// A subflow asked for too early (the connection is not fully established): ask again at the
    /// next pass, without holding it against the path.
    mutating func notYet(token: UInt32, address: IPAddress) {
        connections[token]?.attempts[address] = nil
    }

    /// The kernel refused a subflow from the connection's first address under id 0 (kernels
    /// before the userspace path manager took id 0 for new subflows): that address gets an id of
    /// its own in this connection, asked for again at the next pass. RM_ADDR then works as it did
    /// before, and may be lost when the first subflow's uplink dies (see `Connection.ids`).
    mutating func sharedIDRefused(token: UInt32, address: IPAddress) {
        guard var c = connections[token], c.ids[address] == 0 else { return }
        c.ids[address] = nil
        _ = c.id(for: address)
        c.attempts[address] = nil
        connections[token] = c
    }

    /// Events were lost: a subflow may have closed unseen. Retry every missing one at once.
    mutating func forgetAttempts() {
        for token in connections.keys {
            connections[token]?.attempts = [:]
        }
    }

    /// The commands that bring every connection to one subflow per healthy uplink, with backup
    /// uplinks' subflows marked backup, and no subflow on an unhealthy uplink as long as a
    /// healthy one carries the connection.
    ///
    /// `only` limits the pass to the connections some events were about: each batch of events
    /// then costs what it touched, not every connection (a burst of thousands of new connections
    /// sends three events each). Uplink changes and the periodic pass look at all of them.
    ///
    /// A connection's first pass after it is established starts its `joinDelayNanos`; it gets
    /// its other subflows at the first pass after that (`nextJoinDue` says when).
    ///
    /// `paths` is evaluated only when a connection needs them: most passes of a burst of new
    /// connections only start their join delays, and building the paths was most of their cost.
    mutating func plan(paths makePaths: @autoclosure () -> [Path], now: UInt64, only: Set<UInt32>? = nil) -> [Action] {
        judgeLosses(now: now)
        var built: (all: [Path], healthy: [Path])?
        var actions: [Action] = []
        let due = dueJoins(now: now)
        let selected = only.map { $0.union(due).filter { connections[$0] != nil } } ?? Array(connections.keys)
        for token in selected.sorted() {
            guard var c = connections[token], c.established else { continue }
            if joinDelayNanos > 0 {
                let since = c.firstPlanned ?? now
                if c.firstPlanned == nil {
                    c.firstPlanned = now
                    connections[token] = c
                    waiting.append((token, now &+ joinDelayNanos))
                }
                if now &- since < joinDelayNanos { continue }
            }
            if built == nil {
                let all = makePaths()
                built = (all, all.filter(\.healthy))
            }
            let (paths, healthy) = built!
            let carried = c.subflows.keys.contains { s in healthy.contains { $0.address == s.local.address } }
            // Dead subflows by address, in the order met (by local port: deterministic).
            var withdrawn: [(address: IPAddress, subflows: [Subflow])] = []
            for s in c.subflows.keys.sorted(by: { $0.local.port < $1.local.port }) {
                let path = paths.first { $0.address == s.local.address }
                if path?.healthy != true {
                    // Withdrawing the address tells the concentrator, which then closes its side
                    // and sends the data queued there again on the other subflows at once,
                    // instead of after retransmission timeouts; its side would otherwise linger
                    // and count against its subflow limit. Closing ours does the same for the
                    // other direction. The last way out is kept, though dead: it may come back,
                    // and a connection without subflows cannot get new ones.
                    if carried && !c.destroying.contains(s) {
                        c.destroying.insert(s)
                        if let i = withdrawn.firstIndex(where: { $0.address == s.local.address }) {
                            withdrawn[i].subflows.append(s)
                        } else {
                            withdrawn.append((s.local.address, [s]))
                        }
                    }
                } else if let path, c.subflows[s] != path.backup, c.priorityAsked[s] != path.backup {
                    c.priorityAsked[s] = path.backup
                    // The kernel sends no event for a priority set from here: recorded as asked,
                    // so steering that turns it back is seen as a change again.
                    c.subflows[s] = path.backup
                    actions.append(.setBackup(token: token, s, path.backup))
                }
            }
            // One RM_ADDR per address, before any of its subflows closes: closing one deletes the
            // address from the kernel's list of this connection's addresses, and a later REMOVE
            // for its id finds nothing to withdraw.
            for (address, subflows) in withdrawn {
                actions.append(.remove(token: token, id: c.ids[address] ?? 0, subflows))
            }
            // Attempts, losses and refusals from an address that has since gone down say nothing
            // of it once it is back, whether it was unhealthy or gone with its carrier (absent
            // from `paths`): its first subflow is asked for at once then. The concentrator has
            // freed or will free what it held from there; a refusal backoff kept from before the
            // outage would hold the returning uplink's first join for up to 32 s.
            let isUp = { (address: IPAddress) in healthy.contains { $0.address == address } }
            if c.attempts.keys.contains(where: { !isUp($0) }) { c.attempts = c.attempts.filter { isUp($0.key) } }
            if c.lost.contains(where: { !isUp($0) }) { c.lost = c.lost.filter(isUp) }
            if c.refused.contains(where: { !isUp($0) }) { c.refused = c.refused.filter(isUp) }
            if c.prohibited.keys.contains(where: { !isUp($0) }) { c.prohibited = c.prohibited.filter { isUp($0.key) } }
            var count = c.subflows.count - c.destroying.count
            for path in healthy where count < maxSubflows {
                // A subflow being withdrawn does not count: on a path that was dead it may sit
                // closing until the path returns, and the connection needs a new one now. A path
                // that should carry several gets them one at a time: an attempt is keyed by its
                // address, and the next is asked for once the last one is established.
                let have = c.subflows.keys.count { $0.local.address == path.address && !c.destroying.contains($0) }
                guard have < path.subflows else { continue }
                if c.lost.remove(path.address) != nil, c.attempts[path.address] == nil {
                    // Its loss is judged on its own (or was a refusal): the wait is not a failure.
                    c.attempts[path.address] = now
                    c.refused.insert(path.address)
                    continue
                }
                if let last = c.attempts[path.address] {
                    // An attempt that has not become a subflow by now has failed.
                    // A refused attempt is retried after the backoff delay; one with no answer yet
                    // gets at least 3 s, past the SYN's first retransmissions (1 s, then 2 s more),
                    // so a lost SYN on a slow uplink is neither counted nor doubled.
                    let refused = c.refused.contains(path.address)
                    let wait = max(
                        refused ? retryDelay(path.address) : max(retryDelay(path.address), Self.answerNanos),
                        prohibitedDelay(c.prohibited[path.address] ?? 0))
                    guard now &- last >= wait else { continue }
                    if c.refused.remove(path.address) == nil {
                        failed(path.address, c.remote.port, "subflow not established within \(wait / 1_000_000) ms")
                    }
                }
                guard let id = c.id(for: path.address) else { continue }
                c.attempts[path.address] = now
                count += 1
                // Each uplink dials the concentrator over its own family: an IPv6-only uplink joins
                // a session that started over IPv4 at the concentrator's IPv6 address.
                let remote = Endpoint(address: path.server ?? c.remote.address, port: c.remote.port)
                actions.append(
                    .create(
                        token: token, local: path.address, id: id, backup: path.backup, ifindex: path.ifindex,
                        remote: remote))
            }
            connections[token] = c
        }
        return actions
    }

    /// The wait before asking again from an address: doubles with each failure in a row, up to
    /// 8 times the base, so a path that breaks MPTCP is not hammered but is found again within
    /// seconds once it is mended.
    func retryDelay(_ address: IPAddress) -> UInt64 {
        retryNanos << UInt64(min(records[address]?.failures ?? 0, 3))
    }

    /// The wait before a connection asks again from an address the concentrator refused it
    /// `refusals` times in a row: 0 when it never did.
    func prohibitedDelay(_ refusals: Int) -> UInt64 {
        refusals == 0 ? 0 : retryNanos << UInt64(min(refusals, Self.prohibitedBackoffLimit))
    }

    /// Subflows per local address, over all connections: what `braid status` shows per uplink.
    var subflowsByAddress: [IPAddress: Int] {
        var out: [IPAddress: Int] = [:]
        for c in connections.values {
            for s in c.subflows.keys { out[s.local.address, default: 0] += 1 }
        }
        return out
    }
}
