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
        var ifindex: UInt32
        /// The uplink's role is backup: its subflows carry data only when no other can (MP_PRIO).
        var backup: Bool
        var healthy: Bool
    }

    struct Subflow: Hashable {
        var local: Endpoint
        var remote: Endpoint
    }

    enum Action: Equatable {
        case create(token: UInt32, local: IPAddress, id: UInt8, backup: Bool, ifindex: UInt32, remote: Endpoint)
        /// Withdraw the subflow's local address (id 0 is the first subflow's) from the connection.
        case remove(token: UInt32, id: UInt8, Subflow)
        case setBackup(token: UInt32, Subflow, Bool)
    }

    struct Connection {
        var remote: Endpoint
        var established = false
        /// Live subflows and whether each is marked backup.
        var subflows: [Subflow: Bool] = [:]
        /// Address ids this connection has used, by local address. The kernel keeps an id bound
        /// to its address for the connection's life, so a re-created subflow must reuse it.
        var ids: [IPAddress: UInt8] = [:]
        /// When a subflow from an address was last asked for, to pace retries.
        var attempts: [IPAddress: UInt64] = [:]
        var destroying: Set<Subflow> = []
        var priorityAsked: [Subflow: Bool] = [:]

        mutating func id(for address: IPAddress) -> UInt8? {
            if let id = ids[address] { return id }
            let used = Set(ids.values)
            guard let free = (1...UInt8.max).first(where: { !used.contains($0) }) else { return nil }
            ids[address] = free
            return free
        }
    }

    /// Only connections to this address are ours to manage (data and control connections alike).
    let server: IPAddress
    /// At most this many subflows per connection, the first included.
    let maxSubflows: Int
    /// A failed or unanswered subflow is asked for again after this long.
    let retryNanos: UInt64
    private(set) var connections: [UInt32: Connection] = [:]

    init(server: IPAddress, maxSubflows: Int, retryNanos: UInt64 = 1_000_000_000) {
        self.server = server
        self.maxSubflows = maxSubflows
        self.retryNanos = retryNanos
    }

    /// Follows the kernel's account of connections and subflows.
    mutating func handle(_ e: MPTCPEvent) {
        switch e.kind {
        case .created, .established:
            guard !e.serverSide, let local = e.local, let remote = e.remote, remote.address == server else { return }
            var c = connections[e.token] ?? Connection(remote: remote)
            c.subflows[Subflow(local: local, remote: remote)] = c.subflows[Subflow(local: local, remote: remote)] ?? false
            if e.kind == .established { c.established = true }
            connections[e.token] = c
        case .closed:
            connections[e.token] = nil
        case .subflowEstablished, .subflowPriority:
            guard var c = connections[e.token], let local = e.local, let remote = e.remote else { return }
            let s = Subflow(local: local, remote: remote)
            c.subflows[s] = e.backup
            if let id = e.localID, id != 0, c.ids[local.address] == nil { c.ids[local.address] = id }
            connections[e.token] = c
        case .subflowClosed:
            guard var c = connections[e.token], let local = e.local, let remote = e.remote else { return }
            let s = Subflow(local: local, remote: remote)
            c.subflows[s] = nil
            c.destroying.remove(s)
            c.priorityAsked[s] = nil
            connections[e.token] = c
        case .announced, .removed, .other:
            break
        }
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
    mutating func plan(paths: [Path], now: UInt64) -> [Action] {
        var actions: [Action] = []
        for token in connections.keys.sorted() {
            guard var c = connections[token], c.established else { continue }
            let healthy = paths.filter(\.healthy)
            let carried = c.subflows.keys.contains { s in healthy.contains { $0.address == s.local.address } }
            for s in c.subflows.keys.sorted(by: { $0.local.port < $1.local.port }) {
                let path = paths.first { $0.address == s.local.address }
                if path?.healthy != true {
                    // Closing the subflow makes the kernel send its unacknowledged data again on
                    // the others at once, instead of after retransmission timeouts; withdrawing
                    // its address tells the concentrator, whose side of the subflow would
                    // otherwise linger and count against its subflow limit. The last way out is
                    // kept, though dead: it may come back, and a connection without subflows
                    // cannot get new ones.
                    if carried && !c.destroying.contains(s) {
                        c.destroying.insert(s)
                        actions.append(.remove(token: token, id: c.ids[s.local.address] ?? 0, s))
                    }
                } else if let path, c.subflows[s] != path.backup, c.priorityAsked[s] != path.backup {
                    c.priorityAsked[s] = path.backup
                    actions.append(.setBackup(token: token, s, path.backup))
                }
            }
            var count = c.subflows.count - c.destroying.count
            for path in healthy where count < maxSubflows {
                guard !c.subflows.keys.contains(where: { $0.local.address == path.address }) else { continue }
                if let last = c.attempts[path.address], now &- last < retryNanos { continue }
                guard let id = c.id(for: path.address) else { continue }
                c.attempts[path.address] = now
                count += 1
                actions.append(
                    .create(
                        token: token, local: path.address, id: id, backup: path.backup, ifindex: path.ifindex,
                        remote: c.remote))
            }
            connections[token] = c
        }
        return actions
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
