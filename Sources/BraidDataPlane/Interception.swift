import BraidCore
import CNftables

#if canImport(Glibc)
import Glibc
#endif

/// The gateway's nftables table: TCP arriving on the LAN devices is handed to the transparent
/// listener with TPROXY (original destination kept, no NAT), and nothing else reaches that
/// listener. LAN traffic that is routed instead (UDP, ICMP) is NATed to the uplink it leaves by,
/// each uplink's flows carrying its connection mark, and LAN QUIC may be refused (see `Egress`).
/// The daemon owns the whole table
/// `inet braid` and nothing else, so an operator's own ruleset is never touched.
public final class Interception {
    public struct Settings: Equatable, Sendable {
        public var tableName: String
        public var lanDevices: [String]
        public var listenerPort: UInt16
        public var fwmark: UInt32
        public var egress: Egress
        /// Local TCP ports only the LAN devices (and the box itself) may reach: the status page.
        public var lanOnlyPorts: [UInt16]
        /// The gateway's rules: which LAN traffic is relayed, routed or refused.
        public var steering: Steering
        /// The rules the operator pushed for the gateway's class, after the gateway's own.
        public var operatorRules: [RuleStatement] = []

        public init(
            tableName: String = "braid", lanDevices: [String], listenerPort: UInt16, fwmark: UInt32,
            egress: Egress = Egress(), steering: Steering = Steering(), lanOnlyPorts: [UInt16] = []
        ) {
            self.tableName = tableName
            self.lanDevices = lanDevices
            self.listenerPort = listenerPort
            self.fwmark = fwmark
            self.egress = egress
            self.lanOnlyPorts = lanOnlyPorts
            self.steering = steering
        }
    }

    /// What the table does to LAN traffic that is routed, not relayed.
    public struct Egress: Equatable, Sendable {
        /// One uplink device whose LAN flows are masqueraded to its address and marked.
        public struct Uplink: Equatable, Sendable {
            public var device: String
            /// Connection mark of its flows, inside `Egress.markMask`.
            public var mark: UInt32

            public init(device: String, mark: UInt32) {
                self.device = device
                self.mark = mark
            }
        }

        public var uplinks: [Uplink]
        /// The bits of the connection mark braid owns; the others stay as they were.
        public var markMask: UInt32
        /// Refuse LAN UDP to port 443 (QUIC) with ICMP port unreachable.
        public var refuseQUIC: Bool

        public init(uplinks: [Uplink] = [], markMask: UInt32 = 0, refuseQUIC: Bool = false) {
            self.uplinks = uplinks
            self.markMask = markMask
            self.refuseQUIC = refuseQUIC
        }

        /// The rules of the `forward` chain.
        var forwardRules: [String] {
            let hex = { (v: UInt32) in "0x" + String(v, radix: 16) }
            // Answered at once, so a browser falls back to TCP (which braid bonds) without waiting
            // out its QUIC handshake timeout; icmpx is port unreachable in either family.
            let quic =
                refuseQUIC ? ["iifname @lan_devices udp dport 443 counter reject with icmpx type port-unreachable"] : []
            // A LAN flow is marked with the uplink its first packet leaves by (postrouting has no
            // input device to tell LAN packets from the gateway's own, this hook has both). The
            // gateway's own flows (MPTCP subflows, probes) stay unmarked: they are sent from the
            // uplink's address already, and a flush of an uplink's flows must not touch them. LAN
            // TCP reaches this hook only when a rule (or default_action) routes it direct:
            // prerouting relays or drops the rest.
            return quic
                + uplinks.map {
                    "iifname @lan_devices oifname \"\($0.device)\" ct state new "
                        + "ct mark set ct mark and \(hex(~markMask)) or \(hex($0.mark))"
                }
        }

        /// The rules of the `postrouting` chain: marked flows leave with the address of their
        /// uplink (the nat hook sees a flow's first packet only).
        var postroutingRules: [String] {
            uplinks.isEmpty ? [] : ["ct mark and 0x\(String(markMask, radix: 16)) != 0 masquerade"]
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    var settings: Settings
    var installed = false
    /// One libnftables context for the table's lifetime, made at start while descriptor numbers
    /// are low: libnftables waits on its netlink socket with select(), which aborts the process
    /// (FD_SETSIZE) when the socket's number is above 1023, as it is when a busy gateway stops
    /// with thousands of sessions open and makes a new context then.
    private let ctx: OpaquePointer

    public init(_ settings: Settings) throws {
        self.settings = settings
        guard let ctx = nft_ctx_new(UInt32(NFT_CTX_DEFAULT)) else {
            throw Failure(description: "nftables: cannot create a context")
        }
        nft_ctx_buffer_output(ctx)
        nft_ctx_buffer_error(ctx)
        self.ctx = ctx
    }

    deinit {
        nft_ctx_free(ctx)
    }

    /// The ruleset, as `nft -f` would read it. The LAN devices are a named set, so a reload changes
    /// its elements and leaves the chain and every other rule as they are.
    public static func ruleset(_ s: Settings) -> String {
        let devices = s.lanDevices.map { "\"\($0)\"" }.joined(separator: ", ")
        let hex = { (v: UInt32) in "0x" + String(v, radix: 16) }
        let mark = hex(s.fwmark)
        // The bits EgressMarks gives uplinks, also when a test builds the table without uplinks.
        let egressMask = s.egress.markMask == 0 ? UInt32(0x00ff_0000) : s.egress.markMask
        // nft refuses an empty `elements = { }`: an empty set is declared without the line.
        let lanOnly = s.lanOnlyPorts.isEmpty ? "" : "elements = { \(s.lanOnlyPorts.map(String.init).joined(separator: ", ")) }"
        // Deleting inside the same transaction makes a restart after a crash replace the old
        // table atomically; `add table` first makes the delete valid when there was none.
        return """
            add table inet \(s.tableName)
            delete table inet \(s.tableName)
            table inet \(s.tableName) {
                set lan_devices {
                    type ifname
                    elements = { \(devices) }
                }
                set lan_only_ports {
                    type inet_service
                    \(lanOnly)
                }
                chain prerouting {
                    type filter hook prerouting priority mangle; policy accept;
                    iifname != @lan_devices return
                    # Traffic for the gateway itself (management, DNS, DHCP, neighbour discovery) is
                    # neither intercepted nor ruled: rules are about what the gateway forwards.
                    fib daddr type { local, broadcast, multicast } return
                    # Packets of connections already handed over: deliver to their socket. Flows
                    # already routed keep going the way they started (a pinned one by its uplink's
                    # mark): a reload's new rules judge new connections only.
                    meta l4proto tcp socket transparent 1 meta mark set \(mark) accept
                    ct mark and \(hex(Self.pinnedFlowBit)) != 0 meta mark set ct mark and \(hex(egressMask)) accept
                    ct mark and \(hex(egressMask)) != 0 accept
                    goto rules
                }
                # The gateway's rules, first match wins, then default_action: replaced whole on reload.
                chain rules {
            \(s.steering.chainRules(markMask: egressMask).map { "        \($0)\n" }.joined())    }
                # The operator's rules for this gateway's class (control channel), after the gateway's own.
                chain \(Self.operatorChain) {
            \(s.operatorRules.map { "        \($0.nft(markMask: egressMask))\n" }.joined())    }
                # Relayed: TCP is handed to the transparent listener; other protocols are routed.
                chain bond {
                    meta l4proto != tcp accept
                    meta l4proto tcp tproxy ip to :\(s.listenerPort) meta mark set \(mark) accept
                    meta l4proto tcp tproxy ip6 to :\(s.listenerPort) meta mark set \(mark) accept
                    # TPROXY found no listener: the daemon died without removing this table (its
                    # stop does). Routed, LAN TCP would leave unbonded through the main table;
                    # dropped, a client's SYN retries reach the restarted daemon, which replaces it.
                    meta l4proto tcp counter drop
                }
                # The transparent listener is bound to every address (IP_TRANSPARENT needs it), so a
                # connection addressed to its port from an uplink, or to the gateway's own address
                # from the LAN, would be accepted without TPROXY and relayed to the gateway itself;
                # the concentrator's connection back would arrive here again, a loop of thousands of
                # connections a second. Only packets TPROXY marked above may reach that port.
                chain input {
                    type filter hook input priority filter; policy accept;
                    tcp dport \(s.listenerPort) meta mark != \(mark) counter drop
                    # The status page binds the LAN address, but Linux accepts a packet for any local
                    # address on any device (the weak host model, RFC 1122 3.3.4.2): an uplink's
                    # next hop routing to the LAN address would reach the page without this.
                    tcp dport @lan_only_ports iifname != @lan_devices iifname != "lo" counter drop
                }
                chain forward {
                    type filter hook forward priority filter; policy accept;
            \(s.egress.forwardRules.map { "        \($0)\n" }.joined())    }
                # LAN traffic braid routes (not relays) is marked with its uplink in forward and
                # leaves with that uplink's address, so it can move to another uplink: the gateway
                # deletes the flows of an uplink it moves away from, by mark.
                chain postrouting {
                    type nat hook postrouting priority srcnat; policy accept;
            \(s.egress.postroutingRules.map { "        \($0)\n" }.joined())    }
            }

            """
    }

    public func install() throws {
        try run(Self.ruleset(settings))
        installed = true
    }

    /// Makes the LAN device set hold `devices`, adding and deleting elements in one transaction:
    /// a device kept is never missing from the set, and connections already handed to the
    /// listener are sockets of their own, which no rule change reaches.
    public func setLANDevices(_ devices: [String]) throws {
        let quoted = { (names: [String]) in names.map { "\"\($0)\"" } }
        if installed,
            let commands = elementChanges("lan_devices", from: quoted(settings.lanDevices), to: quoted(devices))
        {
            try run(commands)
        }
        settings.lanDevices = devices
    }

    /// The commands that make set `name` hold `new` instead of `old` (elements as nft writes
    /// them), in one transaction; nil when both hold the same.
    private func elementChanges(_ name: String, from old: [String], to new: [String]) -> String? {
        let added = new.filter { !old.contains($0) }
        let removed = old.filter { !new.contains($0) }
        guard !(added.isEmpty && removed.isEmpty) else { return nil }
        let element = { (items: [String]) in "{ " + items.joined(separator: ", ") + " }" }
        let set = "inet \(settings.tableName) \(name)"
        var commands = ""
        if !added.isEmpty { commands += "add element \(set) \(element(added))\n" }
        if !removed.isEmpty { commands += "delete element \(set) \(element(removed))\n" }
        return commands
    }

    /// Makes the `forward` and `postrouting` chains match `egress`, in one transaction: a reload
    /// that adds an uplink or changes `quic` touches nothing else, and flows already NATed keep
    /// their mapping (the nat hook sees only new flows).
    public func setEgress(_ egress: Egress) throws {
        guard installed, egress != settings.egress else {
            settings.egress = egress
            return
        }
        let table = "inet \(settings.tableName)"
        var commands = "flush chain \(table) forward\nflush chain \(table) postrouting\n"
        for rule in egress.forwardRules { commands += "add rule \(table) forward \(rule)\n" }
        for rule in egress.postroutingRules { commands += "add rule \(table) postrouting \(rule)\n" }
        try run(commands)
        settings.egress = egress
    }

    /// Makes the LAN-only port set hold `ports` (the status page moved or was turned on or off),
    /// in one transaction like `setLANDevices`.
    public func setLANOnlyPorts(_ ports: [UInt16]) throws {
        let texts = { (p: [UInt16]) in p.map(String.init) }
        if installed,
            let commands = elementChanges("lan_only_ports", from: texts(settings.lanOnlyPorts), to: texts(ports))
        {
            try run(commands)
        }
        settings.lanOnlyPorts = ports
    }

    /// Makes the `rules` chain hold `steering`, in one transaction: connections already relayed
    /// are sockets of their own and flows already routed are accepted before the chain, so a
    /// changed rule reaches new connections only.
    public func setSteering(_ steering: Steering) throws {
        guard installed, steering != settings.steering else {
            settings.steering = steering
            return
        }
        let table = "inet \(settings.tableName)"
        var commands = "flush chain \(table) rules\n"
        for rule in steering.chainRules(markMask: markMask) { commands += "add rule \(table) rules \(rule)\n" }
        try run(commands)
        settings.steering = steering
    }

    /// Deletes table `inet TABLENAME` if it exists, as a run killed without its clean stop left
    /// it; does nothing otherwise. Errors are not reported: there is nothing left to do about them.
    public static func removeLeftover(tableName: String = "braid") {
        guard let ctx = nft_ctx_new(UInt32(NFT_CTX_DEFAULT)) else { return }
        defer { nft_ctx_free(ctx) }
        nft_ctx_buffer_output(ctx)
        nft_ctx_buffer_error(ctx)
        // `add` first makes the delete valid when there is no such table.
        _ = nft_run_cmd_from_buffer(ctx, "add table inet \(tableName)\ndelete table inet \(tableName)\n")
    }

    public func remove() throws {
        guard installed else { return }
        try run("delete table inet \(settings.tableName)\n")
        installed = false
    }

    /// The bits EgressMarks gives uplinks, also when a test builds the table without uplinks.
    var markMask: UInt32 { settings.egress.markMask == 0 ? UInt32(0x00ff_0000) : settings.egress.markMask }

    /// Runs a `list` command and returns what nft printed.
    func list(_ command: String) throws -> String {
        try run(command)
        return nft_ctx_get_output_buffer(ctx).map { String(cString: $0) } ?? ""
    }

    /// Applies `commands` as one nftables transaction through libnftables.
    func run(_ commands: String) throws {
        let rc = nft_run_cmd_from_buffer(ctx, commands)
        if rc != 0 {
            let message = nft_ctx_get_error_buffer(ctx).map { String(cString: $0) } ?? "unknown error"
            throw Failure(description: "nftables rejected the interception table: \(message)")
        }
    }
}
